"""The product catalogue a scenario's shoppers browse, built once per (scenario, seed).

Every product carries what a cart or browse message needs (seed: "include variant_title,
image_url, and product_url in the event"). The hot path never builds product payloads: it
asks for :meth:`Catalog.props` / :meth:`Catalog.line_item` and gets a cached dict that is shared
by every event that mentions that product. Those dicts are never mutated (events are frozen and
nobody writes into their properties).

Popularity is Zipf-like (weight ∝ 1 / rank^1.1 over a random ranking), so a few products take
most of the views, as in real stores.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np

from generator.scenario import model
from generator.simulate.seeding import Global, global_rng

ZIPF_EXPONENT = 1.1

ADJECTIVES = (
    "Classic", "Everyday", "Relaxed", "Essential", "Vintage", "Cropped", "Oversized", "Tailored", "Soft",
    "Lightweight", "Cozy", "Weekend", "Signature", "Modern", "Heritage", "Easy", "Slim", "Ribbed", "Washed",
    "Structured",
)  # fmt: skip
MATERIALS = (
    "Linen", "Cotton", "Merino", "Cashmere", "Denim", "Silk", "Leather", "Canvas", "Wool", "Organic Cotton",
    "Bamboo", "Suede", "Corduroy", "Fleece", "Recycled Nylon",
)  # fmt: skip
NOUNS: dict[str, tuple[str, ...]] = {
    "tops": ("Tee", "Shirt", "Sweater", "Hoodie", "Tank", "Blouse", "Cardigan"),
    "bottoms": ("Jeans", "Trousers", "Shorts", "Skirt", "Joggers", "Chinos"),
    "dresses": ("Dress", "Midi Dress", "Slip Dress", "Shirt Dress", "Wrap Dress"),
    "shoes": ("Sneakers", "Loafers", "Boots", "Sandals", "Mules"),
    "accessories": ("Tote", "Scarf", "Beanie", "Belt", "Cap", "Wallet"),
    "outerwear": ("Jacket", "Coat", "Parka", "Overshirt", "Vest"),
}
BRANDS = ("Northwind Supply", "Juniper & Co", "Harbor Goods", "Fieldnote", "Common Thread")
SIZES = ("XS", "S", "M", "L", "XL", "XXL")
SHOE_SIZES = ("6", "7", "8", "9", "10", "11", "12")
COLOURS = ("Black", "Sand", "Olive", "Navy", "Oat", "Rust", "Stone", "Sage")


@dataclass(frozen=True, slots=True)
class Product:
    """One product (all variants share name, category and price)."""

    index: int
    product_id: str
    handle: str
    name: str
    brand: str
    category: str
    price: float
    position: int
    variant_ids: tuple[str, ...]
    variant_titles: tuple[str, ...]
    skus: tuple[str, ...]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _noun_table(category: str) -> tuple[str, ...]:
    known = NOUNS.get(category.lower())
    if known:
        return known
    word = category.replace("_", " ").replace("-", " ").strip().title()
    return (word[:-1] if word.endswith("s") and not word.endswith("ss") else word,)


def _variant_titles(category: str, count: int) -> tuple[str, ...]:
    table = SHOE_SIZES if category.lower() == "shoes" else SIZES if category.lower() in NOUNS else COLOURS
    start = max(0, (len(table) - count) // 2)  # sizes centred on M / 9
    titles = list(table[start : start + count])
    titles += [f"Option {i}" for i in range(len(titles) + 1, count + 1)]
    return tuple(titles)


class Catalog:
    """Products plus cached per-product payloads and a popularity sampler."""

    def __init__(self, spec: model.Catalog, *, seed: int) -> None:
        rng = global_rng(spec.seed if spec.seed is not None else seed, Global.CATALOG)
        n = spec.products
        self.currency = spec.currency
        self.base_url = spec.base_url
        self.categories = spec.categories
        cat_idx = rng.integers(0, len(spec.categories), size=n)
        adjectives = rng.integers(0, len(ADJECTIVES), size=n)
        materials = rng.integers(0, len(MATERIALS), size=n)
        nouns = rng.random(n)
        brands = rng.integers(0, len(BRANDS), size=n)
        raw = rng.lognormal(np.log(spec.price.median), spec.price.sigma, size=n)
        # Shop prices end in .99 above 10 (and stay inside [min, max]); cents are exact.
        cents = np.clip(np.round(raw), spec.price.min, spec.price.max) * 100
        cents = np.where(cents >= 1000, cents - 1, cents)
        cents = np.clip(cents, round(spec.price.min * 100), round(spec.price.max * 100)).astype(np.int64)
        id_base = int(rng.integers(1_000_000_000, 8_000_000_000))
        variant_base = int(rng.integers(10_000_000_000_000, 40_000_000_000_000))
        ranking = rng.permutation(n)
        titles = {c: _variant_titles(c, spec.variants_per_product) for c in spec.categories}

        products: list[Product] = []
        seen_in_category: dict[str, int] = {}
        for i in range(n):
            category = spec.categories[int(cat_idx[i])]
            table = _noun_table(category)
            noun = table[int(nouns[i] * len(table))]
            name = f"{ADJECTIVES[int(adjectives[i])]} {MATERIALS[int(materials[i])]} {noun}"
            handle = f"{_slug(name)}-{i + 1}"
            seen_in_category[category] = position = seen_in_category.get(category, 0) + 1
            product_id = str(id_base + i * 1009)
            vtitles = titles[category]
            code = _slug(category)[:3].upper() or "PRD"
            products.append(
                Product(
                    index=i,
                    product_id=product_id,
                    handle=handle,
                    name=name,
                    brand=BRANDS[int(brands[i])],
                    category=category,
                    price=int(cents[i]) / 100,
                    position=position,
                    variant_ids=tuple(
                        str(variant_base + (i * spec.variants_per_product + v) * 37)
                        for v in range(spec.variants_per_product)
                    ),
                    variant_titles=vtitles,
                    skus=tuple(f"{code}-{i + 1:05d}-{_slug(t).upper()}" for t in vtitles),
                )
            )
        self.products: tuple[Product, ...] = tuple(products)
        weights = (1.0 / (ranking.astype(np.float64) + 1.0) ** ZIPF_EXPONENT).tolist()
        total = sum(weights)
        self._cumulative = [w / total for w in accumulate(weights)]
        self._props: dict[tuple[int, int], dict[str, Any]] = {}
        self._pages: dict[int, tuple[str, str]] = {}
        self._category_pages = {
            c: (f"/collections/{c}", c.replace("_", " ").title()) for c in spec.categories
        }
        self._items: dict[tuple[int, int, int], dict[str, Any]] = {}
        qty = spec.quantity if sum(spec.quantity) > 0 else (1.0,)
        qtotal = sum(qty)
        self._quantity_cumulative = [w / qtotal for w in accumulate(qty)]

    def __len__(self) -> int:
        return len(self.products)

    def pick(self, u: float) -> int:
        """A product index by popularity, from a uniform draw in [0, 1)."""
        return min(bisect_right(self._cumulative, u), len(self.products) - 1)

    def quantity(self, u: float) -> int:
        """A quantity (1, 2, ...) by the scenario's quantity weights, from a uniform draw."""
        return min(bisect_right(self._quantity_cumulative, u), len(self._quantity_cumulative) - 1) + 1

    def props(self, index: int, variant: int) -> dict[str, Any]:
        """The product's event properties (shared dict: do not mutate)."""
        key = (index, variant)
        found = self._props.get(key)
        if found is not None:
            return found
        p = self.products[index]
        url = f"{self.base_url}/products/{p.handle}"
        found = {
            "sku": p.skus[variant],
            "product_id": p.product_id,
            "variant_id": p.variant_ids[variant],
            "variant_title": p.variant_titles[variant],
            "name": p.name,
            "brand": p.brand,
            "category": p.category,
            "price": p.price,
            "currency": self.currency,
            "product_url": url,
            "image_url": f"{self.base_url}/cdn/{p.handle}.jpg",
            "url": url,
            "position": p.position,
        }
        if len(self._props) > 200_000:  # huge catalogues: keep memory flat
            self._props.clear()
        self._props[key] = found
        return found

    def page_info(self, index: int) -> tuple[str, str]:
        """The product page's path and title."""
        found = self._pages.get(index)
        if found is None:
            product = self.products[index]
            found = self._pages[index] = (f"/products/{product.handle}", product.name)
        return found

    def category_page(self, category: str) -> tuple[str, str]:
        """A category (collection) page's path and title."""
        return self._category_pages[category]

    def line_item(self, index: int, variant: int, quantity: int) -> dict[str, Any]:
        """An order/checkout line item (Segment e-commerce ``products[]`` shape; shared dict)."""
        key = (index, variant, quantity)
        found = self._items.get(key)
        if found is not None:
            return found
        props = self.props(index, variant)
        found = {
            "product_id": props["product_id"],
            "sku": props["sku"],
            "name": props["name"],
            "price": props["price"],
            "quantity": quantity,
            "category": props["category"],
            "variant": props["variant_title"],
            "variant_id": props["variant_id"],
            "url": props["product_url"],
            "image_url": props["image_url"],
        }
        if len(self._items) > 200_000:
            self._items.clear()
        self._items[key] = found
        return found
