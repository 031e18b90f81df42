"""The dashboard's pages, in navigation order.

Adding a page takes three things: an entry here, a template ``templates/<name>.html`` that
extends ``base.html``, and an ES module ``static/js/pages/<name>.js`` that renders it from
the JSON API and the event stream. The route, the navigation link and the access check come
from the entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from datamill.protocol.access import Role


@dataclass(frozen=True, slots=True)
class Page:
    name: str  # names the template, the script and the route (``page:<name>``)
    title: str
    path: str  # may hold path parameters, handed to the script as data-params
    nav: bool = True  # listed in the navigation
    section: str | None = None  # the navigation entry shown as current (default: this page)
    needs: Role = Role.viewer  # the role a key needs to see the page

    @property
    def current(self) -> str:
        return self.section or self.name

    @property
    def template(self) -> str:
        return f"{self.name}.html"

    @property
    def script(self) -> str:
        return f"js/pages/{self.name}.js"


PAGES: tuple[Page, ...] = (
    Page("batches", "Batches", "/"),
    Page("batch", "Batch", "/batches/{batch_id}", nav=False, section="batches"),
    Page("upload", "Upload", "/upload", needs=Role.member),
    Page("deployments", "Deployments", "/deployments"),
    Page("workers", "Workers", "/workers"),
    Page("generation", "Generation", "/generation"),
    Page("datasets", "Datasets", "/datasets"),
    Page("dataset", "Dataset", "/datasets/{dataset_id}", nav=False, section="datasets"),
    Page(
        "review",
        "Review",
        "/datasets/{dataset_id}/review",
        nav=False,
        section="datasets",
        needs=Role.reviewer,
    ),
    Page("webhooks", "Webhooks", "/webhooks", needs=Role.admin),
)
