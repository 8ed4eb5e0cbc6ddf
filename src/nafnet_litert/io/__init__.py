"""Files in and out: photos (:mod:`.image`), videos (:mod:`.video`) and atomic writes (:mod:`.files`)."""
