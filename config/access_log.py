"""gunicorn's access log with card numbers and secrets masked (`logger_class` in config/gunicorn.conf.py).

The access log line holds the request line (path and query string), the Referer and the User-Agent, and
any header or environ value a custom `access_log_format` names: each is masked by the one detector in
config/security.py, percent-encoded values included, before the line is written. API requests carrying
card data are refused (config/middleware.py), but gunicorn logs them after Django answered.
"""

from typing import Any

from gunicorn.glogging import Logger

from config.security import mask_sensitive


class MaskingLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            key: mask_sensitive(value, url=True) if isinstance(value, str) else value for key, value in atoms.items()
        }
