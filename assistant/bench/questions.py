"""The fixed everyday questions of the text benchmark.

Eight of them ask for about a hundred words, so that replies reach 60 words or
more: that is where streaming speech and the sequential baseline differ the most.
"""

from typing import Final

TEXT_QUESTIONS: Final = (
    "Explain in about a hundred words how a rainbow forms.",
    "What should I pack for a weekend hiking trip? Answer in about a hundred words.",
    "Why is the sky blue?",
    "Give me some tips for sleeping better, in about a hundred words.",
    "How do I make a good cup of tea? Explain in about a hundred words.",
    "What causes the seasons on Earth?",
    "What are some simple ways to save money on groceries? Answer in about a hundred words.",
    "Explain in about a hundred words how a refrigerator keeps food cold.",
    "Why is regular exercise good for you?",
    "In about a hundred words, how do bees make honey?",
    "What is a good way to start learning to cook? Answer in about a hundred words.",
    "How do vaccines help the body fight disease?",
)

WARM_UP: Final = "Say hello in one sentence."
