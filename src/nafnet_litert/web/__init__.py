"""Deblur in the browser: build a static site that runs the exported model with LiteRT.js (:mod:`.build`) and serve
it on 127.0.0.1 (:mod:`.serve`)."""

from .build import CORE_IMPORT, CORE_IMPORT_RELATIVE, LITERTJS, SITE_MARKER, Site, build_site, npm_tarball
from .serve import SiteHandler, SiteServer, inside_folder, make_server, well_formed_path

__all__ = [
    "CORE_IMPORT",
    "CORE_IMPORT_RELATIVE",
    "LITERTJS",
    "SITE_MARKER",
    "Site",
    "SiteHandler",
    "SiteServer",
    "build_site",
    "inside_folder",
    "make_server",
    "npm_tarball",
    "well_formed_path",
]
