"""The fixed tasks of `agent_eval.py`: 150 questions of five kinds, 30 each.

- `fact`: closed-book facts any model of this size has seen many times (capitals, authors, basic science).
- `arithmetic`: multi-digit sums and products a small model cannot do in its head; the accepted answer is
  computed here, so it is exact.
- `kb`: facts about Orrery Labs, a made-up company whose only record is the knowledge base in `agents/kb/`
  (the one the shipped agent spec uses).
- `unanswerable`: questions about made-up people and places: nobody knows the answer, so declining (a
  refusal, an escalation, "I don't know") is right and any concrete claim is wrong.
- `open_ended`: requests with no single answer ("write a haiku about rain"): any reply that does not decline
  is right.

`tool` names the tool a task needs (tool-call precision counts calls of that tool as the right ones)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KINDS = ("fact", "arithmetic", "kb", "unanswerable", "open_ended")


@dataclass(frozen=True)
class Task:
    """One question, what it is graded against, and the tool it needs (None: none)."""

    id: str
    kind: str
    question: str
    accepted: tuple[str, ...] = field(default=())
    tool: str | None = None


_FACTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("What is the capital of France?", ("Paris",)),
    ("What is the capital of Japan?", ("Tokyo",)),
    ("What is the capital of Italy?", ("Rome", "Roma")),
    ("What is the capital of Germany?", ("Berlin",)),
    ("What is the capital of Spain?", ("Madrid",)),
    ("What is the capital of Egypt?", ("Cairo",)),
    ("What is the capital of Russia?", ("Moscow",)),
    ("What is the capital of the United Kingdom?", ("London",)),
    ("Who wrote the play Romeo and Juliet?", ("Shakespeare",)),
    ("Who wrote the novel Pride and Prejudice?", ("Austen",)),
    ("Who wrote the novel Nineteen Eighty-Four?", ("Orwell", "Eric Blair")),
    ("Who wrote Don Quixote?", ("Cervantes",)),
    ("Who painted the Mona Lisa?", ("Leonardo", "da Vinci", "Vinci")),
    ("Who was the first person to walk on the Moon?", ("Armstrong",)),
    ("Who developed the theory of relativity?", ("Einstein",)),
    ("What is the chemical formula of water?", ("H2O", "H₂O")),
    ("What is the chemical symbol of gold?", ("Au",)),
    ("Which planet is closest to the Sun?", ("Mercury",)),
    ("What is the largest planet in the Solar System?", ("Jupiter",)),
    ("Which planet is known as the Red Planet?", ("Mars",)),
    ("At how many degrees Celsius does water boil at sea level?", ("100", "one hundred")),
    ("How many legs does a spider have?", ("8", "eight")),
    ("How many days are there in a week?", ("7", "seven")),
    ("What is the largest ocean on Earth?", ("Pacific",)),
    ("What is the tallest mountain on Earth?", ("Everest",)),
    ("What gas do plants take in from the air for photosynthesis?", ("carbon dioxide", "CO2", "CO₂")),
    ("What is the hardest natural material?", ("diamond",)),
    ("What is the longest river in Africa?", ("Nile",)),
    ("What is the closest star to the Earth?", ("Sun",)),
    ("What language is mainly spoken in Brazil?", ("Portuguese",)),
)

_KB: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("In what year was Orrery Labs founded?", ("2011",)),
    ("Who founded Orrery Labs?", ("Halvorsen", "Okafor")),
    ("Where is Orrery Labs headquartered?", ("Tromsø", "Tromso", "Tromsoe")),
    ("In which country is Orrery Labs headquartered?", ("Norway",)),
    ("Who is the CEO of Orrery Labs?", ("Ingrid Halvorsen", "Halvorsen")),
    ("Who is the chief technology officer of Orrery Labs?", ("Tomas Okafor", "Okafor")),
    ("How many employees does Orrery Labs have?", ("340", "three hundred forty", "three hundred and forty")),
    ("Which company did Orrery Labs acquire in 2019?", ("Bellwether Optics", "Bellwether")),
    ("In what year did Orrery Labs acquire Bellwether Optics?", ("2019",)),
    ("What does Bellwether Optics make?", ("lens", "lenses")),
    ("In which city was Bellwether Optics based?", ("Porto", "Oporto")),
    ("Where did Orrery Labs open its second office?", ("Valparaíso", "Valparaiso")),
    ("In what year did Orrery Labs open its second office?", ("2022",)),
    ("Which prize did Orrery Labs win in 2016?", ("Nordlys Design Prize", "Nordlys")),
    ("In what year did Orrery Labs win the Nordlys Design Prize?", ("2016",)),
    ("For which product did Orrery Labs win the Nordlys Design Prize?", ("Lumen Dial",)),
    ("What kind of device is the Lumen Dial made by Orrery Labs?", ("mount controller", "telescope mount")),
    ("In what year was the Orrery Labs Lumen Dial first sold?", ("2014",)),
    ("How much does the Orrery Labs Lumen Dial cost?", ("480",)),
    ("What is Perihelion, made by Orrery Labs?", ("star tracking", "star-tracking", "software")),
    ("On which Orrery Labs device does the Perihelion software run?", ("Lumen Dial",)),
    ("What is the Kestrel-9 made by Orrery Labs?", ("radio telescope", "antenna")),
    ("In what year was the Orrery Labs Kestrel-9 released?", ("2021",)),
    ("How much does the Orrery Labs Kestrel-9 weigh?", ("7 kilograms", "7 kg", "7kg", "seven kilograms")),
    ("What is the Orrery Labs support email address?", ("help@orrerylabs.example",)),
    ("How long is the Orrery Labs warranty?", ("3 years", "three years")),
    ("On which days does Orrery Labs support answer?", ("weekdays", "Monday to Friday")),
    ("At what time does Orrery Labs support start answering in the morning?", ("08:00", "8:00", "8 am", "8am")),
    ("Until what time does Orrery Labs support answer?", ("16:00", "4 pm", "4pm", "4:00 pm")),
    ("What does Orrery Labs make?", ("astronomers", "astronomy", "telescope")),
)

_UNANSWERABLE: tuple[str, ...] = (
    "What year was the painter Oskarine Velbrand-Moss born?",
    "Who was the first mayor of the town of Quenmarrow in Eastern Tallisport?",
    "What is the population of the village of Drevnik Hollow in Sarvania?",
    "Which instrument did the composer Tamsin Ulverholt play in the Brisk Harbour Quartet?",
    "What is the name of the river that flows through the city of Calverin in Ostmarch?",
    "How tall is the Lanthorn Spire in the city of Peldavia?",
    "What was the maiden name of Orsolya Fenwright-Baptiste, the explorer of the Murren Plateau?",
    "What did the chemist Idris Vandermolen discover in 1887?",
    "Which football club did Kwabena Strallhaven captain in the 1970s?",
    "What is the national dish of the island nation of Merovisca?",
    "Who designed the Halcyon Bridge over the Yssel Gorge in Trevania?",
    "What was the title of the first novel by the writer Benedikt Arroway-Lune?",
    "In which year did the kingdom of Ostravel join the Western Amber League?",
    "What is the highest peak of the Corvallen Mountains in Nimbria?",
    "Who won the Harrowgate Medal for poetry in 1963?",
    "What is the official language of the republic of Valtessa Minor?",
    "How many students attend the Thornquist Academy of Navigation in Port Ellery?",
    "What was the name of the ship commanded by Captain Aurelio Mendacourt in 1752?",
    "Which city is the capital of the province of Greyhallow in Lusmere?",
    "What is the phone number of the Pemberwick Lighthouse Museum?",
    "Who was the mentor of the sculptor Zofia Calloway-Renn?",
    "What is the main export of the town of Fennimore Reach?",
    "In what year did the astronomer Halvard Quist discover the comet Quist-Abara?",
    "What colour is the flag of the duchy of Morvaine?",
    "How long is the Sellagrane Tunnel under the Brannock Strait?",
    "Who is the current chairman of the Velmont Hollow Rowing Society?",
    "What was the birth name of the singer known as Lady Corvessa?",
    "Which university did the philosopher Ansgar Pelletier-Moon teach at?",
    "What is the area of Lake Tirrenwold in square kilometres?",
    "Which award did the architect Mireille Osterhagen win in 1994?",
)

_OPEN_ENDED: tuple[str, ...] = (
    "Write a haiku about rain.",
    "Write a haiku about a quiet morning.",
    "Write a two-line poem about the sea.",
    "Suggest a name for a pet turtle.",
    "Give me three ideas for a rainy Sunday afternoon.",
    "Write one sentence describing autumn leaves.",
    "Describe the smell of fresh bread in one sentence.",
    "Write a short thank-you note to a neighbour who watered my plants.",
    "Suggest a title for a mystery novel set on a train.",
    "Write a limerick about a cat.",
    "Give me a tip for staying focused while studying.",
    "Write a short motivational sentence for a Monday morning.",
    "Describe a sunset over the mountains in two sentences.",
    "Suggest three toppings for a homemade pizza.",
    "Write a one-sentence story about a lost umbrella.",
    "Tell me a riddle for children.",
    "Write a short birthday message for a friend.",
    "Suggest a name for a small bakery.",
    "Describe the sound of wind in the trees.",
    "Write a short poem about friendship.",
    "Give me two ideas for a healthy breakfast.",
    "Write a tongue twister about frogs.",
    "Suggest a slogan for a bicycle repair shop.",
    "Write a polite sentence declining a meeting invitation.",
    "Describe a cup of hot chocolate on a winter evening.",
    "Write a short lullaby about the stars.",
    "Give me a name for a friendly robot in a children's book.",
    "Write a sentence that uses the word 'lantern'.",
    "Suggest a theme for a school science fair poster.",
    "Write a short encouraging note to someone learning to swim.",
)


def _arithmetic() -> list[tuple[str, int]]:
    """Thirty sums and products of multi-digit numbers, from a fixed seed (the same list every run)."""
    rng = random.Random(20261203)
    items: list[tuple[str, int]] = []
    for i in range(30):
        a, b = rng.randint(120, 9899), rng.randint(13, 987)
        match i % 6:
            case 0:
                items.append((f"What is {a} * {b}?", a * b))
            case 1:
                items.append((f"What is {a} times {b}?", a * b))
            case 2:
                items.append((f"Calculate {a} multiplied by {b}.", a * b))
            case 3:
                c = rng.randint(11, 99)
                items.append((f"What is {a} + {b} * {c}?", a + b * c))
            case 4:
                c = rng.randint(1000, 99999)
                items.append((f"What is {c} + {a} * {b}?", c + a * b))
            case _:
                c = rng.randint(11, 97)
                items.append((f"What is ({a} - {b}) * {c}?", (a - b) * c))
    return items


def load_tasks() -> list[Task]:
    """All 150 tasks, in kind order."""
    tasks = [Task(f"fact-{i:02d}", "fact", q, a) for i, (q, a) in enumerate(_FACTS)]
    tasks += [
        Task(f"arithmetic-{i:02d}", "arithmetic", q, (str(n), f"{n}.0"), "calculator")
        for i, (q, n) in enumerate(_arithmetic())
    ]
    tasks += [Task(f"kb-{i:02d}", "kb", q, a, "knowledge_base") for i, (q, a) in enumerate(_KB)]
    tasks += [Task(f"unanswerable-{i:02d}", "unanswerable", q) for i, q in enumerate(_UNANSWERABLE)]
    tasks += [Task(f"open-{i:02d}", "open_ended", q) for i, q in enumerate(_OPEN_ENDED)]
    return tasks
