"""List pages that fetch the following pages only when iteration reaches them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from wp_llm._client._models import APIObject

ModelT = TypeVar("ModelT", bound=APIObject)
Params = dict[str, str | int]


@dataclass(frozen=True)
class Listing(Generic[ModelT]):
    """The request of a list call: the path, its filters, and the model of the items."""

    path: str
    model: type[ModelT]
    params: Params = field(default_factory=dict)

    @property
    def backwards(self) -> bool:
        """True when the caller paged with `ending_before`, so later pages hold newer objects."""
        return "ending_before" in self.params

    def after(self, data: list[ModelT]) -> Params:
        """Return the query of the page that follows `data` in the listing's direction."""
        params = {
            k: v for k, v in self.params.items() if k not in {"starting_after", "ending_before"}
        }
        if self.backwards:
            params["ending_before"] = _id_of(data[0])
        else:
            params["starting_after"] = _id_of(data[-1])
        return params


def _id_of(item: APIObject) -> str:
    identifier = getattr(item, "id", None)
    if not isinstance(identifier, str):
        raise TypeError(f"{type(item).__name__} has no id to page from")
    return identifier


class Page(Generic[ModelT]):
    """One page of a list; iterating it yields every item of this page and the following ones."""

    def __init__(
        self,
        listing: Listing[ModelT],
        data: list[ModelT],
        has_more: bool,
        fetch: Callable[[Listing[ModelT]], Page[ModelT]],
    ) -> None:
        self.data = data
        self.has_more = has_more
        self._listing = listing
        self._fetch = fetch

    def next_page(self) -> Page[ModelT] | None:
        """Fetch the following page, or return None when this one is the last."""
        if not self.has_more or not self.data:
            return None
        following = Listing(self._listing.path, self._listing.model, self._listing.after(self.data))
        return self._fetch(following)

    def iter_pages(self) -> Iterator[Page[ModelT]]:
        page: Page[ModelT] | None = self
        while page is not None:
            yield page
            page = page.next_page()

    def __iter__(self) -> Iterator[ModelT]:
        for page in self.iter_pages():
            yield from page.data

    def __repr__(self) -> str:
        return (
            f"<Page of {len(self.data)} {self._listing.model.__name__}, has_more={self.has_more}>"
        )


class AsyncPage(Generic[ModelT]):
    """One page of a list; `async for` yields every item of this page and the following ones."""

    def __init__(
        self,
        listing: Listing[ModelT],
        data: list[ModelT],
        has_more: bool,
        fetch: Callable[[Listing[ModelT]], Awaitable[AsyncPage[ModelT]]],
    ) -> None:
        self.data = data
        self.has_more = has_more
        self._listing = listing
        self._fetch = fetch

    async def next_page(self) -> AsyncPage[ModelT] | None:
        """Fetch the following page, or return None when this one is the last."""
        if not self.has_more or not self.data:
            return None
        following = Listing(self._listing.path, self._listing.model, self._listing.after(self.data))
        return await self._fetch(following)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[ModelT]]:
        page: AsyncPage[ModelT] | None = self
        while page is not None:
            yield page
            page = await page.next_page()

    async def __aiter__(self) -> AsyncIterator[ModelT]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item

    def __repr__(self) -> str:
        name = self._listing.model.__name__
        return f"<AsyncPage of {len(self.data)} {name}, has_more={self.has_more}>"


class AsyncPaginator(Generic[ModelT]):
    """The result of an async `list` call: await it for the first page, or `async for` the items."""

    def __init__(self, first_page: Callable[[], Awaitable[AsyncPage[ModelT]]]) -> None:
        self._first_page = first_page

    def __await__(self) -> Generator[Any, None, AsyncPage[ModelT]]:
        return self._first_page().__await__()

    async def __aiter__(self) -> AsyncIterator[ModelT]:
        page = await self._first_page()
        async for item in page:
            yield item
