"""`conversations`: questions of the topics asked after 1 to 8 earlier, unrelated turns, so u can be
trained and checked on chat histories.

For each open-question topic and `countries`, 40 questions picked by a hash of their id become the final
question of a conversation. Its history (`Item.history`, rendered by `to_messages` before the question)
has 1 to 8 turns drawn with a seed made of the item's id, each either small talk from a fixed pool (never twice in one conversation) or a
question of another topic answered correctly with its first accepted answer. The conversation keeps its
final question's answers, its split (`Item.split`, pinned) and its group, so no entity leaks across
splits; earlier questions come from the same split as the final one."""

from __future__ import annotations

import random

from metaspider.loom.datasets import Item, load_items, sample_items
from metaspider.loom.topics.registry import QA_TOPICS
from metaspider.loom.topics.splits import split_of

NAME = "conversations"
PER_TOPIC = 40
MAX_TURNS = 8
SOURCES = (*QA_TOPICS, "countries")

SMALL_TALK: tuple[tuple[str, str], ...] = (
    ("Hi there!", "Hello! How can I help you today?"),
    ("Good morning.", "Good morning! What can I do for you?"),
    ("Thanks, that helps.", "You're welcome!"),
    ("How are you today?", "I'm doing well, thank you. How can I help?"),
    ("Can you keep your answers short?", "Sure, I'll keep them short."),
    ("I'm planning a trip next month.", "That sounds exciting! Where are you going?"),
    ("Do you like music?", "I don't listen to music, but I'm happy to talk about it."),
    ("It's raining again here.", "Sorry to hear that. A good day for a book, maybe?"),
    ("I have a quiz tomorrow.", "Good luck! I can help you practise."),
    ("Tell me a fun word.", "How about 'serendipity'?"),
    ("What's a good name for a cat?", "Maybe 'Mochi' or 'Pepper'."),
    ("I just finished a long walk.", "Nice! Walking is a great way to clear your head."),
    ("Can you help me with some facts?", "Of course, ask away."),
    ("Sorry, I was away for a minute.", "No problem, I'm here when you're ready."),
    ("Give me a word that rhymes with 'light'.", "'Bright' rhymes with 'light'."),
    ("What's 2 plus 2?", "4."),
    ("Say something encouraging.", "You're doing great, keep going!"),
    ("I'm learning to cook.", "That's a great skill! Start with simple dishes."),
)


def _short_answer(item: Item) -> str:
    answer = item.answers[0]
    return answer if answer.endswith((".", "!", "?")) else answer + "."


def build() -> list[Item]:
    """The conversations: 40 per source topic, 1 to 8 earlier turns each."""
    topics = {name: load_items(name) for name in SOURCES}
    splits = {name: split_of(items) for name, items in topics.items()}
    pools: dict[tuple[str, str], list[Item]] = {}
    for name, items in topics.items():
        for item in items:
            pools.setdefault((name, splits[name][item.id]), []).append(item)
    conversations = []
    for name in SOURCES:
        for item in sample_items(topics[name], PER_TOPIC):
            split = splits[name][item.id]
            rng = random.Random(f"{NAME}|{item.id}")
            others = [other for other in SOURCES if other != name and (other, split) in pools]
            history, small_talk = [], rng.sample(SMALL_TALK, len(SMALL_TALK))
            for _ in range(rng.randint(1, MAX_TURNS)):
                if rng.random() < 0.5:
                    history.append(small_talk.pop())
                else:
                    earlier = rng.choice(pools[(rng.choice(others), split)])
                    history.append((earlier.question, _short_answer(earlier)))
            conversations.append(
                Item(
                    id=f"{NAME}:{name}:{item.id}",
                    question=item.question,
                    answers=item.answers,
                    subject=NAME,
                    group=f"{name}:{item.group}",
                    history=tuple(history),
                    split=split,
                )
            )
    return conversations
