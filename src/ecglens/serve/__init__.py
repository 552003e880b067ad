"""The ecglens web service: a FastAPI app with one upload page (``ecglens serve``).

>>> from ecglens.serve import create_app          # doctest: +SKIP
>>> app = create_app("age-sex", max_upload_mb=20)  # doctest: +SKIP

Needs the ``serve`` extra (``pip install ecglens[serve]``: fastapi, uvicorn, python-multipart).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        try:
            from .app import create_app
        except ImportError as err:  # fastapi / python-multipart missing
            raise ImportError(f"the ecglens web service needs the 'serve' extra ({err}); install it with "
                              "`pip install ecglens[serve]`.") from err
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
