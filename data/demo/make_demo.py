"""Generate the bundled demo project: customer-support tickets of an online outdoor-gear
shop, a gold category for each, and the responses of a *recorded demo teacher*.

The tickets are written from templates by this script (nothing is copied from elsewhere).
The recorded teacher responses are authored here too, in exactly the JSON format the
Messages API returns, keyed by the exact request the app would send. They are not the
output of a live model: the app labels them "recorded demo teacher". They include the
kinds of mistakes a real teacher makes (confusable categories, a hedged answer) so that
review has something to find.

Run: .venv/bin/python data/demo/make_demo.py   (rewrites the two files next to it)
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from core.prompt.tokens import estimate_tokens, request_tokens  # noqa: E402
from core.kernel.hashing import request_hash  # noqa: E402
from core.prompt.templates import build_request, preset_template  # noqa: E402

PROJECT = "support-tickets-demo"
MODEL = "claude-haiku-4-5"
MAX_TOKENS = 200
LABELS = ["account", "billing", "returns", "shipping", "technical"]

PRODUCTS = ["pair of hiking boots", "rain jacket", "tent", "sleeping bag", "trail backpack", "headlamp", "water filter",
            "camp stove", "set of trekking poles", "fleece hoodie", "climbing harness", "kayak paddle"]
CARRIERS = ["UPS", "DHL", "FedEx", "the postal service"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend"]

TEMPLATES = {
    "billing": [
        ("Charged twice for order #{order}", "Hi, my credit card statement shows two charges of ${amount} for order #{order}. I only placed one order. Please refund the duplicate charge.", "the customer reports a duplicate card charge for one order"),
        ("Wrong amount on invoice", "The invoice for my {product} says ${amount} but the price on your site was lower when I bought it. Can you correct the invoice?", "the customer disputes the amount on an invoice"),
        ("Promo code not applied", "I used the code SUMMER15 at checkout for a {product} but the discount was not applied and I paid full price (${amount}). Please credit the difference.", "the customer was charged full price because a promo code was not applied"),
        ("Payment declined but money taken", "My payment for the {product} was declined at checkout, yet my bank shows a pending charge of ${amount}. What happened?", "money was taken for a payment that was declined"),
        ("Need a VAT invoice", "Could you send me a proper VAT invoice for order #{order}? My company needs it to reimburse the ${amount}.", "the customer asks for an invoice document for reimbursement"),
        ("Gift card balance wrong", "I had ${amount} on my gift card but after buying a {product} the remaining balance is zero. The card should still have money on it.", "the customer reports a wrong gift card balance after a purchase"),
        ("Charged after cancelling", "I cancelled order #{order} within an hour, but I was still charged ${amount} on my card.", "the customer was charged for an order they cancelled"),
    ],
    "shipping": [
        ("Where is my order #{order}?", "I ordered a {product} ten days ago and tracking has not updated since {day}. When will it arrive?", "the customer asks where a delayed parcel is"),
        ("Package marked delivered but not here", "{carrier} says my package with the {product} was delivered on {day}, but nothing arrived at my door.", "the carrier marked a parcel delivered that never arrived"),
        ("Change delivery address", "I just placed order #{order} and realised the delivery address is my old flat. Can you ship the {product} to my new address instead?", "the customer wants to change where an order is delivered"),
        ("Express shipping took a week", "I paid for express delivery of a {product} but it took a whole week with {carrier}.", "the customer complains that express delivery was slow"),
        ("Do you ship to Norway?", "I'd like to order a {product}, but I live in Norway. Do you deliver there and how long does it take?", "the customer asks whether and how fast the shop delivers to their country"),
        ("Only part of my order arrived", "The box from order #{order} arrived on {day} but the {product} was missing from it. Is it coming in a second parcel?", "a parcel arrived with an item missing from the shipment"),
        ("Tracking number does not work", "The tracking number you emailed for order #{order} shows 'not found' on the {carrier} site.", "the customer cannot track their parcel"),
    ],
    "returns": [
        ("Return a {product}", "The {product} I bought is too small. How do I return it and get my money back?", "the customer wants to send back an item that does not fit"),
        ("Exchange for a different size", "Can I exchange the {product} from order #{order} for one size up? It's unused with tags.", "the customer wants to exchange an item for another size"),
        ("Item arrived damaged", "My {product} arrived with a torn seam. I want to send it back for a replacement.", "the customer wants to return a damaged item for replacement"),
        ("Refund for returned item not received", "I sent the {product} back two weeks ago with {carrier} and you confirmed receipt, but I have not seen the refund yet.", "the customer is waiting for the refund of an item they returned"),
        ("Return label missing", "I want to return my {product} but there was no return label in the box. Can you email me one?", "the customer needs a label to send an item back"),
        ("Return window question", "I bought a {product} 40 days ago and never used it. Can I still return it?", "the customer asks whether an item can still be returned"),
        ("Wrong item sent, want to swap", "I ordered a {product} but received something else in order #{order}. I'd like to send it back and get what I ordered.", "the customer received the wrong item and wants to send it back"),
    ],
    "technical": [
        ("App crashes on checkout", "Every time I try to pay for a {product} in your iPhone app, the app crashes and closes.", "the app crashes during checkout"),
        ("Website shows error 500", "When I open the page for the {product} I get 'Error 500 - internal server error'.", "the website shows a server error"),
        ("Can't add items to cart", "Clicking 'Add to cart' on the {product} does nothing in Chrome. I cleared my cache already.", "a website button does not work in the browser"),
        ("Headlamp firmware update failed", "The app says a firmware update is available for my headlamp, but the update fails at 80% every time.", "a device firmware update fails"),
        ("Size guide page broken", "The size guide for the {product} does not load on my phone, it's just a blank page.", "a page of the website does not load"),
        ("Search returns nothing", "Searching for '{product}' on your site returns no results even though I bought one last month.", "the site search is not working"),
        ("Notifications not working", "I turned on back-in-stock alerts for the {product} in the app but never get any notifications.", "app notifications do not arrive"),
    ],
    "account": [
        ("Can't log in", "I forgot my password and the reset email never arrives. I can't get into my account.", "the customer cannot log in to their account"),
        ("Change my email address", "Please change the email on my account to my new address; I no longer use the old one.", "the customer wants to change the email on their account"),
        ("Delete my account", "I would like my account and personal data deleted under GDPR.", "the customer asks for their account to be deleted"),
        ("Account locked", "My account got locked after too many login attempts. How do I unlock it?", "the customer's account is locked"),
        ("Merge two accounts", "I accidentally created a second account with another email. Can you merge my order history into one account?", "the customer wants two accounts merged"),
        ("Loyalty points missing", "My loyalty points from buying the {product} don't show in my account profile.", "points are missing from the customer's account profile"),
        ("Unsubscribe from newsletter", "I keep getting marketing emails even though I unchecked the newsletter box in my account settings.", "the customer's account email preferences are not respected"),
    ],
}

# Confusions a real teacher plausibly makes: (true category, template index) -> wrong answer.
CONFUSABLE = {
    ("returns", 3): "billing",       # refund not received: money, but it is a return
    ("shipping", 5): "returns",      # missing item
    ("billing", 6): "returns",       # charged after cancelling
    ("account", 5): "billing",       # loyalty points
    ("technical", 6): "account",     # notifications settings
    ("returns", 6): "shipping",      # wrong item sent
}


def make_tickets(rng: random.Random, per_label: int = 80) -> list[dict]:
    rows = []
    for label, templates in TEMPLATES.items():
        for n in range(per_label):
            t_idx = n % len(templates)
            subject, body, gist = templates[t_idx]
            slots = {"order": rng.randint(10000, 99999), "amount": f"{rng.randint(15, 480)}.{rng.choice(['00', '50', '99'])}",
                     "product": rng.choice(PRODUCTS), "carrier": rng.choice(CARRIERS), "day": rng.choice(DAYS)}
            rows.append({"label": label, "t_idx": t_idx, "gist": gist,
                         "subject": subject.format(**slots), "body": body.format(**slots)})
    rng.shuffle(rows)
    for i, row in enumerate(rows, start=1):
        row["ticket_id"] = f"T{i:04d}"
    return rows


def teacher_answer(rng: random.Random, row: dict) -> str:
    key = (row["label"], row["t_idx"])
    answer = row["label"]
    if key in CONFUSABLE and rng.random() < 0.35:
        answer = CONFUSABLE[key]
    elif rng.random() < 0.02:
        answer = rng.choice([label for label in LABELS if label != row["label"]])
    if rng.random() < 0.012:  # a hedged answer that review must catch
        other = CONFUSABLE.get(key, "billing" if row["label"] != "billing" else "account")
        return f"Answer: {row['label']} or {other}\nRationale: The ticket could be read either way."
    return f"Answer: {answer}\nRationale: The ticket is {answer} because {row['gist']}."


def main() -> None:
    rng = random.Random(20261129)
    rows = make_tickets(rng)
    with open(HERE / "support_tickets.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["ticket_id", "subject", "body", "category"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"ticket_id": row["ticket_id"], "subject": row["subject"], "body": row["body"],
                             "category": row["label"]})
    template = preset_template("classification", ["subject", "body"])
    with open(HERE / "teacher_responses.jsonl", "w", encoding="utf-8") as f:
        for n, row in enumerate(rows):
            item = {"inputs": {"subject": row["subject"], "body": row["body"]}, "choices": None}
            request = build_request(template, item, LABELS, MODEL, MAX_TOKENS)
            text = teacher_answer(rng, row)
            response = {
                "id": f"msg_demo_{n:05d}", "type": "message", "role": "assistant", "model": MODEL,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": request_tokens(request), "output_tokens": estimate_tokens(text) + 2},
            }
            f.write(json.dumps({"request_hash": request_hash(request), "request": request, "response": response},
                               ensure_ascii=False) + "\n")
    (HERE / "project.json").write_text(json.dumps({
        "project": PROJECT, "task": "classification", "file": "support_tickets.csv", "id_field": "ticket_id",
        "input_fields": ["subject", "body"], "label_field": "category", "labels": LABELS,
        "template": template, "model": MODEL, "max_tokens": MAX_TOKENS,
    }, indent=2) + "\n")
    print(f"wrote {len(rows)} tickets and recorded teacher responses to {HERE}")


if __name__ == "__main__":
    main()
