"""POST /v1/events (what shoppers did), GET/DELETE /v1/shoppers/<id>/profile (their learned
preferences; DELETE erases the profile and the events: the right to be forgotten)."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from looksync.search.shoppers import ShopperEvent
from serving.context import engine
from serving.models import EventsBody, ShopperPath
from serving.validation import json_body, require_media_type, validate

bp = Blueprint("shoppers", __name__, url_prefix="/v1")


def _shopper_id(shopper_id: str) -> str:
    return validate(ShopperPath, {"shopper_id": shopper_id}).shopper_id


@bp.post("/events")
def record_events():
    require_media_type("application/json")
    body = validate(EventsBody, json_body())
    now = time.time()
    events = [
        ShopperEvent(e.shopper_id, e.product_id, e.type, e.at if e.at is not None else now, e.size) for e in body.events
    ]
    return jsonify({"stored": engine().record_events(events)}), 201


@bp.get("/shoppers/<shopper_id>/profile")
def shopper_profile(shopper_id: str):
    return jsonify(engine().shopper_profile(_shopper_id(shopper_id)))


@bp.delete("/shoppers/<shopper_id>/profile")
def forget_shopper(shopper_id: str):
    shopper_id = _shopper_id(shopper_id)
    return jsonify({"shopper_id": shopper_id, "erased": engine().forget_shopper(shopper_id)})
