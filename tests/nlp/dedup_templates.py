"""The hand-written templates behind tests/nlp/data/dedup_pairs.jsonl.

Each template is a sentence ``a``, a paraphrase ``b`` of it written by hand, and the values
of one slot. For every value, ``a`` and ``b`` filled with it are a true duplicate (a
paraphrase). For two neighbouring values, ``a`` with one and ``a`` with the other (and ``b``
with one, ``a`` with the other) are a hard negative: a templated near-miss that differs only
in the slot (an entity, a number, a date, a negation or a key term), which an embedding
alone reads as the same sentence. A value is one string for both sentences or a pair
``(for a, for b)`` when the paraphrase words it differently.

Regenerate the data file with ``python -m tests.nlp.dedup_templates`` (deterministic).
Templates are split in two by their position: even ones choose the thresholds, odd ones
are held out to report on (`split`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

Value = str | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Template:
    domain: str
    slot: str  # entity, number, date, negation, term
    a: str
    b: str
    values: tuple[Value, ...]


T = Template
TEMPLATES: tuple[Template, ...] = (
    # -- general knowledge ---------------------------------------------------------------
    T(
        "general",
        "entity",
        "What is the capital of {}?",
        "Which city is the capital of {}?",
        ("France", "Spain", "Italy", "Japan"),
    ),
    T(
        "general",
        "entity",
        "Who wrote the novel {}?",
        "Which author is behind the book {}?",
        ("Moby Dick", "War and Peace", "Don Quixote", "Middlemarch"),
    ),
    T(
        "general",
        "entity",
        "How tall is {}?",
        "What is the height of {}?",
        ("Mount Everest", "the Eiffel Tower", "Kilimanjaro", "the Burj Khalifa"),
    ),
    T(
        "general",
        "date",
        "The museum is closed every {}.",
        "Every {} the museum does not open.",
        ("Monday", "Tuesday", "Sunday"),
    ),
    T(
        "general",
        "number",
        "The flight from Boston takes {} hours.",
        "Flying from Boston lasts about {} hours.",
        ("six", "nine", "three"),
    ),
    T(
        "general",
        "entity",
        "Trains to {} leave from platform four.",
        "Platform four is where the trains for {} depart.",
        ("Lyon", "Geneva", "Turin"),
    ),
    # -- legal -------------------------------------------------------------------------------
    T(
        "legal",
        "number",
        "Customers may request a refund within {} days of purchase.",
        "A refund can be claimed up to {} days after buying.",
        ("30", "60", "14", "90"),
    ),
    T(
        "legal",
        "negation",
        "The tenant {} sublet the apartment without written consent.",
        "Without the landlord's written consent the tenant {} sublet the flat.",
        (("may", "is allowed to"), ("may not", "is not allowed to")),
    ),
    T(
        "legal",
        "entity",
        "This agreement is governed by the laws of {}.",
        "The laws of {} govern this contract.",
        ("Delaware", "New York", "England", "Ontario"),
    ),
    T(
        "legal",
        "date",
        "The lease ends on {} 2027.",
        "The rental agreement expires on {} 2027.",
        ("31 March", "30 June", "1 September"),
    ),
    T(
        "legal",
        "number",
        "The seller must deliver the goods within {} business days.",
        "Delivery of the goods by the seller is due within {} working days.",
        ("5", "10", "15"),
    ),
    T(
        "legal",
        "term",
        "The employee is entitled to {} leave after one year of service.",
        "After a year of service the worker may take {} leave.",
        ("parental", "sabbatical", "bereavement"),
    ),
    T(
        "legal",
        "negation",
        "The warranty {} water damage.",
        "Water damage is {} by the warranty.",
        (("covers", "covered"), ("does not cover", "not covered")),
    ),
    T(
        "legal",
        "number",
        "Late payments incur interest of {} percent per month.",
        "Interest of {} percent a month is charged on payments made late.",
        ("1.5", "2", "3"),
    ),
    T(
        "legal",
        "term",
        "Either party may terminate the contract for {} with notice.",
        "The contract can be ended by either side for {} if notice is given.",
        ("convenience", "insolvency", "misconduct"),
    ),
    T(
        "legal",
        "entity",
        "Disputes shall be settled by arbitration in {}.",
        "Any dispute will go to arbitration in {}.",
        ("London", "Paris", "Singapore", "Stockholm"),
    ),
    T(
        "legal",
        "number",
        "The non-compete clause lasts {} months after termination.",
        "For {} months after the contract ends, the non-compete clause applies.",
        ("six", "twelve", "eighteen"),
    ),
    # -- medical -----------------------------------------------------------------------------
    T(
        "medical",
        "number",
        "Adults should take {} mg of ibuprofen every eight hours.",
        "The adult dose of ibuprofen is {} mg every 8 hours.",
        ("200", "400", "600"),
    ),
    T(
        "medical",
        "term",
        "Is {} safe to take during pregnancy?",
        "Can pregnant women safely use {}?",
        ("paracetamol", "ibuprofen", "aspirin", "codeine"),
    ),
    T(
        "medical",
        "term",
        "The patient was diagnosed with {} diabetes last year.",
        "Last year the patient received a diagnosis of {} diabetes.",
        ("type 1", "type 2", "gestational"),
    ),
    T(
        "medical",
        "negation",
        "The vaccine {} recommended for children under two.",
        "For children younger than two the vaccine {} advised.",
        ("is", ("is not", "is not")),
    ),
    T(
        "medical",
        "term",
        "Symptoms of {} include fever and a sore throat.",
        "Fever and a sore throat are signs of {}.",
        ("influenza", "tonsillitis", "mononucleosis"),
    ),
    T(
        "medical",
        "number",
        "Fasting is required for {} hours before the blood test.",
        "Patients must not eat for {} hours before the blood test.",
        ("8", "12", "24"),
    ),
    T(
        "medical",
        "term",
        "The MRI showed a small tear in the {} ligament.",
        "A small tear of the {} ligament was visible on the MRI.",
        ("anterior cruciate", "posterior cruciate", "medial collateral"),
    ),
    T(
        "medical",
        "entity",
        "Dr. {} will see the patient on Thursday morning.",
        "On Thursday morning the patient has an appointment with Dr. {}.",
        ("Patel", "Nguyen", "Garcia", "Okafor"),
    ),
    T(
        "medical",
        "term",
        "Chronic {} can be managed with regular exercise.",
        "Regular exercise helps to manage chronic {}.",
        ("hypertension", "asthma", "arthritis"),
    ),
    T(
        "medical",
        "number",
        "Store the insulin between {} degrees Celsius.",
        "Insulin should be kept at {} degrees Celsius.",
        ("2 and 8", "15 and 25"),
    ),
    # -- code --------------------------------------------------------------------------------
    T(
        "code",
        "term",
        "How do I sort a list of dictionaries by a key in {}?",
        "In {}, how can a list of dicts be sorted by one of their keys?",
        ("Python", "JavaScript", "Ruby", "Go"),
    ),
    T(
        "code",
        "term",
        "The function returns {} when the input list is empty.",
        "When the input list is empty, the function gives back {}.",
        ("None", "zero", "an empty string"),
    ),
    T(
        "code",
        "number",
        "Set the connection timeout to {} seconds.",
        "The connection timeout should be {} seconds.",
        ("5", "30", "120"),
    ),
    T(
        "code",
        "term",
        "Use a {} to store the unique user identifiers.",
        "The unique user ids are best kept in a {}.",
        ("set", "list", "dictionary", "queue"),
    ),
    T(
        "code",
        "negation",
        "This endpoint {} authentication.",
        "Authentication {} required by this endpoint.",
        (("requires", "is"), ("does not require", "is not")),
    ),
    T(
        "code",
        "entity",
        "How do I install {} on Ubuntu?",
        "What are the steps to set up {} on Ubuntu?",
        ("PostgreSQL", "Redis", "Docker", "Nginx"),
    ),
    T(
        "code",
        "number",
        "The service listens on port {} by default.",
        "By default the service accepts connections on port {}.",
        ("8080", "5432", "443"),
    ),
    T(
        "code",
        "term",
        "Why does my {} loop never terminate?",
        "What makes my {} loop run forever?",
        ("while", "for", "recursive"),
    ),
    T(
        "code",
        "term",
        "Convert the timestamp to {} before saving it.",
        "Before it is saved, the timestamp should be converted to {}.",
        ("UTC", "local time", "an integer"),
    ),
    # -- math --------------------------------------------------------------------------------
    T(
        "math",
        "number",
        "What is the derivative of x to the power of {}?",
        "Differentiate x raised to the power {}.",
        ("2", "3", "5"),
    ),
    T(
        "math",
        "number",
        "A train travels {} kilometres in two hours; what is its average speed?",
        "Find the average speed of a train that covers {} km in 2 hours.",
        ("120", "150", "90"),
    ),
    T(
        "math",
        "term",
        "Find the {} of the numbers 12, 18 and 24.",
        "What is the {} of 12, 18 and 24?",
        ("mean", "median", "sum"),
    ),
    T(
        "math",
        "number",
        "Solve for x: 2x + {} = 15.",
        "What value of x satisfies 2x + {} = 15?",
        ("3", "5", "7"),
    ),
    T(
        "math",
        "term",
        "Prove that the square root of {} is irrational.",
        "Show that the square root of {} is not a rational number.",
        ("2", "3", "5"),
    ),
    T(
        "math",
        "term",
        "What is the area of a {} with sides of 4 cm?",
        "Compute the area of a {} whose sides measure 4 cm.",
        ("square", "regular hexagon", "equilateral triangle"),
    ),
    T(
        "math",
        "number",
        "How many ways can {} people sit around a round table?",
        "In how many ways can {} people be seated at a circular table?",
        ("4", "6", "8"),
    ),
    # -- customer support ----------------------------------------------------------------------
    T(
        "support",
        "term",
        "How do I reset my {}?",
        "What is the way to reset my {}?",
        ("password", "router", "PIN", "email address"),
    ),
    T(
        "support",
        "number",
        "Your order will arrive in {} business days.",
        "Expect your order to be delivered within {} working days.",
        ("2", "5", "7"),
    ),
    T(
        "support",
        "negation",
        "I {} received the confirmation email.",
        "The confirmation email {} reached me.",
        (("have", "has"), ("have not", "has not")),
    ),
    T(
        "support",
        "entity",
        "Do you ship to {}?",
        "Is delivery to {} available?",
        ("Canada", "Australia", "Brazil", "Germany"),
    ),
    T(
        "support",
        "term",
        "I want to cancel my {} subscription.",
        "Please cancel my {} subscription.",
        ("monthly", "annual", "premium"),
    ),
    T(
        "support",
        "date",
        "Our support line is open until 6 pm on {}.",
        "On {} you can call support until 6 pm.",
        ("Saturdays", "Fridays", "Sundays"),
    ),
    T(
        "support",
        "number",
        "The premium plan costs {} dollars a month.",
        "Premium is priced at {} dollars per month.",
        ("10", "20", "49"),
    ),
    T(
        "support",
        "term",
        "My {} arrived damaged; can I get a replacement?",
        "The {} I received was broken, can you replace it?",
        ("blender", "laptop", "headphones", "kettle"),
    ),
)


def _fill(template: str, value: Value, side: int) -> str:
    return template.format(value if isinstance(value, str) else value[side])


def pairs() -> list[dict[str, object]]:
    """Every labelled pair, in template order."""
    out: list[dict[str, object]] = []
    for number, t in enumerate(TEMPLATES):
        common = {"template": number, "domain": t.domain, "slot": t.slot}
        for value in t.values:
            out.append(
                {
                    **common,
                    "label": "duplicate",
                    "a": _fill(t.a, value, 0),
                    "b": _fill(t.b, value, 1),
                }
            )
        for one, other in itertools.pairwise(t.values):
            out.append(
                {**common, "label": "distinct", "a": _fill(t.a, one, 0), "b": _fill(t.a, other, 0)}
            )
            out.append(
                {**common, "label": "distinct", "a": _fill(t.b, one, 1), "b": _fill(t.a, other, 0)}
            )
    return out


def split(pair: dict[str, object]) -> str:
    """``tune`` (even templates) or ``held_out`` (odd ones)."""
    return "tune" if int(pair["template"]) % 2 == 0 else "held_out"  # type: ignore[call-overload]


if __name__ == "__main__":
    path = Path(__file__).parent / "data" / "dedup_pairs.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for pair in pairs():
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")
    print(f"{path}: {len(pairs())} pairs")
