"""Generated conversational memory data with labelled evidence, for the retrieval-quality evaluation.

Every persona (one agent) talks with an assistant over many turns. Each stored memory is one
turn. A handful of turns state facts about the persona (the evidence); other turns are
distractors on the same topics (a neighbour's dog, a friend's new job, the assistant echoing
the topic) and filler chat. Each question is labelled with the turn that holds its answer and
comes in one of three styles:

- "lexical": reuses the evidence's words (keyword search is at home here);
- "paraphrase": the same need in other words (only meaning can find it);
- "mixed": one distinctive word (a name, a place) plus paraphrase.

All text is generated here from templates and word lists written for this project, so the
data set is public domain in effect; `python -m bench.quality` builds it from a fixed seed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ["Biscuit", "Pepper", "Mango", "Oscar", "Luna", "Ziggy", "Clover", "Nacho", "Pickles", "Juniper", "Waffles",
         "Tofu", "Marble", "Rocket", "Olive", "Hazel", "Bruno", "Kiwi", "Noodle", "Sprout"]
PEOPLE = ["Ana", "Bilal", "Chen", "Dara", "Emeka", "Fatima", "Goran", "Hiro", "Ines", "Jonas", "Keiko", "Luis",
          "Maya", "Nikos", "Olu", "Priya", "Quinn", "Rosa", "Sven", "Tariq"]
CITIES = ["Lisbon", "Osaka", "Denver", "Tallinn", "Montreal", "Valencia", "Hamburg", "Melbourne", "Nairobi", "Porto",
          "Krakow", "Seattle", "Bergen", "Quito", "Adelaide"]
COMPANIES = ["Northwind", "Globex", "Initech", "Umbrella Labs", "Stark Analytics", "Wayne Logistics", "Acme Robotics",
             "Hooli", "Vandelay Imports", "Soylent Foods"]
FACTS = {
    "pet": {
        "slots": lambda r: {"species": r.choice(["dog", "cat", "rabbit", "parrot"]), "name": r.choice(NAMES)},
        "evidence": ["I finally adopted a {species} last weekend, we named it {name}.",
                     "We brought home a little {species} on Saturday and called it {name}."],
        "lexical": "What did we name the {species} we adopted?",
        "paraphrase": "What is my new {synonym} called?",
        "mixed": "Is {name} settling in at home?",
        "distractors": ["My neighbour's {species} barks at every car that drives past.",
                        "Do you know any good names for a {species}? My cousin wants one."],
        "echo": "Congratulations on the new {species}! They need plenty of attention in the first weeks.",
        "synonyms": {"dog": "puppy", "cat": "kitten", "rabbit": "bunny", "parrot": "bird"},
    },
    "job": {
        "slots": lambda r: {"company": r.choice(COMPANIES), "role": r.choice(["data analyst", "nurse", "teacher",
                                                                              "product designer", "accountant"])},
        "evidence": ["I accepted an offer to work as a {role} at {company}, starting next month.",
                     "Big news: {company} hired me as a {role}!"],
        "lexical": "Which company offered me the {role} job?",
        "paraphrase": "Who is my new employer going to be?",
        "mixed": "When do I start at {company}?",
        "distractors": ["My friend just started a new job at a bank and hates the commute.",
                        "What should I wear to a job interview for a {role} position?"],
        "echo": "That is wonderful news about the job! Starting a new role is a big step.",
    },
    "move": {
        "slots": lambda r: {"city": r.choice(CITIES), "month": r.choice(["March", "June", "September", "November"])},
        "evidence": ["We are moving to {city} in {month}; the flat is already rented.",
                     "It's official, we relocate to {city} this {month}."],
        "lexical": "Which city are we moving to in {month}?",
        "paraphrase": "Where will our new home be after the relocation?",
        "mixed": "What should I pack for life in {city}?",
        "distractors": ["My cousin lives in {other_city} and loves the food there.",
                        "Moving house is so stressful, how do people cope with it?"],
        "echo": "A move is a lot of work. Make a checklist for the weeks before it.",
    },
    "allergy": {
        "slots": lambda r: {"food": r.choice(["peanuts", "shellfish", "sesame", "kiwi fruit", "eggs"])},
        "evidence": ["I'm allergic to {food}, so I always read the labels twice.",
                     "Reminder for myself: {food} give me a bad allergic reaction."],
        "lexical": "What am I allergic to?",
        "paraphrase": "Which ingredient do I have to avoid because it makes me sick?",
        "mixed": "Can I eat {food} at the party?",
        "distractors": ["My sister has hay fever every spring.",
                        "Are food allergies more common in children than adults?"],
        "echo": "Allergies can be serious, it is good that you check ingredients carefully.",
    },
    "sibling": {
        "slots": lambda r: {"relative": r.choice(["brother", "sister"]), "person": r.choice(PEOPLE),
                            "day": r.choice(["Friday", "next weekend", "the 12th"])},
        "evidence": ["My {relative} {person} is coming to stay with us from {day}.",
                     "{person}, my {relative}, visits us {day} for a week."],
        "lexical": "When is my {relative} coming to stay?",
        "paraphrase": "Which family member will be our house guest soon?",
        "mixed": "How long is {person} staying with us?",
        "distractors": ["My colleague {other_person} is visiting Rome next month.",
                        "What are good things to do with guests in the city?"],
        "echo": "Having family over is lovely. Maybe plan a dinner together.",
    },
    "instrument": {
        "slots": lambda r: {"instrument": r.choice(["cello", "ukulele", "trumpet", "piano", "drums"])},
        "evidence": ["I've been taking {instrument} lessons every Tuesday since the spring.",
                     "Practised the {instrument} for an hour tonight, my fingers hurt."],
        "lexical": "Which instrument am I taking lessons for?",
        "paraphrase": "What music am I learning to play?",
        "mixed": "How is my {instrument} practice going?",
        "distractors": ["My nephew wants to learn guitar but has no patience.",
                        "Is it too late to learn an instrument as an adult?"],
        "echo": "Learning music takes patience; short daily practice works best.",
    },
    "car": {
        "slots": lambda r: {"car": r.choice(["Volvo estate", "red Fiat", "used Toyota hybrid", "Skoda van"])},
        "evidence": ["We finally bought a {car}, picked it up yesterday.",
                     "Our new {car} is parked outside, it drives beautifully."],
        "lexical": "Which car did we buy?",
        "paraphrase": "What vehicle did we get recently?",
        "mixed": "Does the {car} need winter tyres?",
        "distractors": ["My neighbour keeps parking his truck in front of our gate.",
                        "Is it better to lease or buy a car these days?"],
        "echo": "Congratulations on the purchase! Remember to check the insurance.",
    },
    "appointment": {
        "slots": lambda r: {"doctor": r.choice(["dentist", "eye doctor", "physiotherapist"]),
                            "day": r.choice(["Monday", "Wednesday", "Thursday"])},
        "evidence": ["My {doctor} appointment got moved to {day} morning.",
                     "Note to self: {doctor} on {day} at nine."],
        "lexical": "When is my {doctor} appointment?",
        "paraphrase": "What day do I have to see the {role_word}?",
        "mixed": "Should I take {day} morning off work?",
        "distractors": ["My friend's {doctor} is always running late.",
                        "How often should adults get a check-up?"],
        "echo": "Good that you keep track of your appointments. Set a reminder the day before.",
        "role_words": {"dentist": "person who checks my teeth", "eye doctor": "specialist for my vision",
                       "physiotherapist": "therapist for my back"},
    },
    "book": {
        "slots": lambda r: {"book": r.choice(["The Silent Orchard", "A Map of Salt", "Winter Engines",
                                              "The Glass Harbour"])},
        "evidence": ["I'm halfway through {book} and can't put it down.",
                     "Started reading {book} on the train, it's gripping."],
        "lexical": "Which book am I reading at the moment?",
        "paraphrase": "What novel has me hooked lately?",
        "mixed": "Who wrote {book}?",
        "distractors": ["My book club picked a romance novel this month, not my thing.",
                        "Do you have tips for reading more books in a year?"],
        "echo": "Reading on the train is a great habit. Enjoy the story!",
    },
    "sport": {
        "slots": lambda r: {"sport": r.choice(["volleyball", "rowing", "climbing", "table tennis"]),
                            "day": r.choice(["Mondays", "Thursdays", "Sundays"])},
        "evidence": ["I joined a {sport} club that meets on {day}.",
                     "Our {sport} group trains on {day}, I've been going every week."],
        "lexical": "Which club did I join?",
        "paraphrase": "What team activity do I do each week?",
        "mixed": "What time is {sport} training?",
        "distractors": ["My brother watches football all weekend.",
                        "How do I stay motivated to exercise in winter?"],
        "echo": "Regular exercise with a group keeps you motivated. Have fun!",
    },
}
FILLER_USER = [
    "Can you help me write an email to my landlord about the heating?",
    "What's a quick recipe for dinner with rice and vegetables?",
    "Explain how compound interest works in simple terms.",
    "The weather has been grey all week, it's depressing.",
    "How do I remove a coffee stain from a white shirt?",
    "Give me three ideas for a birthday present for a colleague.",
    "Why does my laptop get so hot when I watch videos?",
    "What is the difference between a virus and bacteria?",
    "I need a packing list for a weekend in the mountains.",
    "How long should I boil an egg for a soft yolk?",
    "Summarise the plot of Hamlet in two sentences.",
    "My plants keep dying, what am I doing wrong?",
    "Suggest a name for a small bakery.",
    "How many cups of coffee a day is too many?",
    "What are good stretches after sitting all day?",
    "Translate 'good morning' into Portuguese.",
    "Write a short poem about autumn leaves.",
    "Which is healthier, walking or cycling?",
    "How do I make my flat less noisy?",
    "What should I do when I can't sleep?",
]
FILLER_EXCHANGES = 90
FILLER_ASSISTANT = [
    "Sure, here is a draft you can adapt to your situation.",
    "Here are a few options, pick whichever suits you best.",
    "Good question. The short answer is that it depends on a few things.",
    "I hope that helps! Let me know if you want more detail.",
    "That sounds frustrating. Here are some things you could try.",
    "Happy to help with that. Start with the simplest step first.",
]


@dataclass
class Turn:
    id: str
    persona: int
    role: str
    content: str


@dataclass
class Question:
    persona: int
    text: str
    evidence: str  # Turn.id
    style: str
    fact: str


def build(personas: int = 40, seed: int = 2024) -> tuple[list[Turn], list[Question]]:
    rng = random.Random(seed)
    turns: list[Turn] = []
    questions: list[Question] = []
    for persona in range(personas):
        history: list[tuple[str, str, str | None]] = []  # (role, content, fact label)
        facts = rng.sample(sorted(FACTS), 8)
        for fact in facts:
            spec = FACTS[fact]
            slots = spec["slots"](rng)
            slots.setdefault("other_city", rng.choice(CITIES))
            slots.setdefault("other_person", rng.choice(PEOPLE))
            slots["synonym"] = spec.get("synonyms", {}).get(slots.get("species"), "pet")
            slots["role_word"] = spec.get("role_words", {}).get(slots.get("doctor"), "doctor")
            history.append(("user", rng.choice(spec["evidence"]).format(**slots), fact))
            history.append(("assistant", spec["echo"].format(**slots), None))
            for distractor in spec["distractors"]:
                history.append(("user", distractor.format(**slots), None))
                history.append(("assistant", rng.choice(FILLER_ASSISTANT), None))
            for style in ("lexical", "paraphrase", "mixed"):
                questions.append(Question(persona, spec[style].format(**slots), fact, style, fact))
        for _ in range(FILLER_EXCHANGES):
            history.append(("user", rng.choice(FILLER_USER), None))
            history.append(("assistant", rng.choice(FILLER_ASSISTANT), None))
        # Shuffle in exchanges (user turn + its reply) so the evidence sits anywhere in the history.
        exchanges = [history[i : i + 2] for i in range(0, len(history), 2)]
        rng.shuffle(exchanges)
        evidence_ids = {}
        for number, (role, content, fact) in enumerate(turn for exchange in exchanges for turn in exchange):
            turn_id = f"p{persona:02d}-t{number:03d}"
            turns.append(Turn(turn_id, persona, role, content))
            if fact:
                evidence_ids[fact] = turn_id
        for question in questions:
            if question.persona == persona and question.evidence in FACTS:
                question.evidence = evidence_ids[question.evidence]
    return turns, questions


def split(questions: list[Question], personas: int, seed: int = 11) -> tuple[list[Question], list[Question]]:
    """Tune / held-out split by persona (a fixed seed): held-out personas are never seen while tuning."""
    order = list(range(personas))
    random.Random(seed).shuffle(order)
    held_out = set(order[: personas // 2])
    tune = [q for q in questions if q.persona not in held_out]
    test = [q for q in questions if q.persona in held_out]
    return tune, test
