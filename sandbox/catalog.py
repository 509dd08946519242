"""Seeded, realistic order content: Dutch-ish products, consumers and businesses."""

from __future__ import annotations

import random
import uuid

from sandbox.model import Contact, Customer, Organisation
from sandbox.store import LineSpec

# (sku, label, price in cents incl. VAT, VAT rate)
PRODUCTS: tuple[tuple[str, str, int, int], ...] = (
    ("KOF-BOON-1KG", "Koffiebonen Espresso 1 kg", 2499, 9),
    ("THEE-MUNT-20", "Verse muntthee (20 zakjes)", 449, 9),
    ("STROOP-8", "Stroopwafels Goudse 8 stuks", 379, 9),
    ("KAAS-OUD-500", "Oude Goudse kaas 500 g", 899, 9),
    ("DROP-ZOUT", "Zoute drop 400 g", 329, 9),
    ("HAG-SLAG-PUUR", "Hagelslag puur 400 g", 289, 9),
    ("FIETS-BEL", "Fietsbel chroom", 799, 21),
    ("FIETS-SLOT-XL", "Kettingslot XL ART-2", 5995, 21),
    ("REGEN-PONCHO", "Regenponcho geel", 1995, 21),
    ("KLOMP-GEEL-42", "Klompen geel maat 42", 3450, 21),
    ("DELFTS-MOK", "Delfts blauw mok", 1295, 21),
    ("TULP-BOL-25", "Tulpenbollen mix (25 st.)", 1250, 21),
    ("HOODIE-ZW-M", "Hoodie zwart maat M", 4995, 21),
    ("SOKKEN-3P", "Sokken 3-pack oranje", 1499, 21),
    ("PARAPLU-STORM", "Stormparaplu", 2995, 21),
    ("BOEK-KOOK-NL", "Kookboek Hollandse pot", 2450, 9),
    ("KRANT-ABO", "Krant digitaal (maand)", 1899, 9),
    ("CADEAUBON-25", "Cadeaubon € 25", 2500, 0),
    ("CADEAUBON-50", "Cadeaubon € 50", 5000, 0),
    ("LAPTOP-STAND", "Laptopstandaard aluminium", 3999, 21),
    ("BUREAU-LAMP", "Bureaulamp LED", 12450, 21),
    ("STOEL-ERGO", "Ergonomische bureaustoel", 124900, 21),
)
GIVEN = ("Jan", "Sanne", "Pieter", "Fleur", "Daan", "Emma", "Bram", "Lotte", "Sem", "Noor")
FAMILY = ("de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer")
COMPANIES = (
    "Bakkerij De Gouden Korst B.V.",
    "Fietsenmakerij Van Dam",
    "Koffiebranderij Het Anker",
    "Kantoorpartners Utrecht B.V.",
    "Tuincentrum De Linde",
    "Café 't Hoekje",
)


class Catalog:
    """Generates customers and order lines from a seeded random stream."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"catalog:{seed}")
        self.customers: list[Customer] = []

    def _id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def customer(self, *, b2b: bool | None = None) -> Customer:
        """A returning customer half of the time once some exist, so invoices can combine orders."""
        rng = self._rng
        matching = [c for c in self.customers if b2b is None or (c.organisation is not None) == b2b]
        if matching and rng.random() < 0.5:
            return rng.choice(matching)
        is_b2b = rng.random() < 0.3 if b2b is None else b2b
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        slug = f"{given}.{family}".lower().replace(" ", "")
        organisation = None
        if is_b2b:
            name = rng.choice(COMPANIES)
            organisation = Organisation(self._id(), name)
            domain = name.split()[0].lower().strip("'") + ".nl"
        else:
            domain = rng.choice(("example.nl", "voorbeeld.nl", "mail.example"))
        contact = Contact(self._id(), f"{slug}@{domain}", given, family)
        reference = f"KL-{rng.randrange(10000, 99999)}"
        customer = Customer(contact, organisation, reference)
        self.customers.append(customer)
        return customer

    def lines(self) -> list[LineSpec]:
        """1–6 distinct products, 1–3 units each."""
        chosen = self._rng.sample(PRODUCTS, self._rng.randint(1, 6))
        return [
            LineSpec(sku, label, price, self._rng.randint(1, 3), rate)
            for sku, label, price, rate in chosen
        ]

    def pick(self, ids: list[str], *, fraction: float = 1.0) -> list[str]:
        """A seeded non-empty subset of `ids` (all when fraction is 1)."""
        if fraction >= 1.0 or len(ids) <= 1:
            return list(ids)
        count = max(1, round(len(ids) * fraction))
        chosen = set(self._rng.sample(ids, count))
        return [i for i in ids if i in chosen]
