"""Files in and out: photos (:mod:`.image`), videos (:mod:`.video`), atomic writes (:mod:`.files`) and
(blurred, sharp) pairs in dataset folders (:mod:`.datasets`)."""
