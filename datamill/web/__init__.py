"""The live web dashboard: server-rendered page shells, small ES modules, vendored assets."""

from datamill.web.routes import install_dashboard

__all__ = ["install_dashboard"]
