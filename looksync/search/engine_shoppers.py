"""Shoppers on the online path: events recorded (every product in the live index, or nothing stored),
profiles read and forgotten, and soft preferences applied to an answer's lists (a bounded boost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from looksync.search.engine_base import EngineBase
from looksync.search.requests import InvalidRequest, NotFound

if TYPE_CHECKING:
    from looksync.search.shoppers import ShopperEvent


class ShoppersMixin(EngineBase):
    """``record_events``, ``shopper_profile``, ``forget_shopper`` and ``apply_preferences`` of ``SearchEngine``."""

    @property
    def profiles(self):
        if self._profiles is None:
            from looksync.search.shoppers import open_profile_store

            self._profiles = open_profile_store(self.settings)
        return self._profiles

    def record_events(self, events: list[ShopperEvent]) -> int:
        """Store a batch of shopper events whole: every product must be in the live index (else
        InvalidRequest naming the first unknown, and nothing is stored)."""
        from looksync.search.shoppers import event_fields

        version = self.check_ready()
        products: dict[str, dict[str, Any]] = {}
        for i, event in enumerate(events):
            if event.product_id not in products:
                product = self.index.get(event.product_id, version=version)
                if product is None:
                    raise InvalidRequest(
                        f"events[{i}]: product {event.product_id!r} is not in the live index {version}; nothing was stored",
                        field=f"events[{i}].product_id",
                    )
                products[event.product_id] = product
        self.profiles.add([(event, event_fields(event, products[event.product_id])) for event in events])
        return len(events)

    def shopper_profile(self, shopper_id: str) -> dict[str, Any]:
        profile = self.profiles.get(shopper_id)
        if profile is None:
            raise NotFound(f"no profile for shopper {shopper_id!r} (no events, erased, or expired)")
        return {**profile.to_json(), "recent_events": self.profiles.events(shopper_id)[:20]}

    def forget_shopper(self, shopper_id: str) -> bool:
        """Erase the shopper's profile and events (right to be forgotten); False when there was none."""
        return self.profiles.delete(shopper_id)

    def apply_preferences(self, response: dict[str, Any], shopper_id: str | None) -> dict[str, Any]:
        """Reorder each list of ``response`` by the shopper's soft preferences (a bounded boost, within
        the results the request's filters gave) and say which were applied. A profile store that cannot
        be reached leaves the order as it was, with a degraded note."""
        if shopper_id is None:
            return response
        from looksync.search.shoppers import ProfileUnavailable, personalise

        try:
            profile = self.profiles.get(shopper_id)
        except ProfileUnavailable as exc:
            response.setdefault("degraded", []).append(f"profiles_unavailable: {exc}")
            response["preferences"] = {"shopper_id": shopper_id, "applied": [], "note": "profile store unavailable"}
            return response
        if profile is None:
            response["preferences"] = {"shopper_id": shopper_id, "applied": [], "note": "no profile yet"}
            return response
        cap = self.settings.shopper_max_boost
        lists = [layer["products"] for layer in response.get("layers", [])] + (
            [response["products"]] if "products" in response else []
        )
        for products in lists:
            personalise(products, profile, cap)
        response["preferences"] = {"shopper_id": shopper_id, "applied": profile.kinds(), "max_boost": cap}
        return response
