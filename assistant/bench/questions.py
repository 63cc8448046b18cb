"""The fixed everyday questions of the text benchmark.

Most ask for a paragraph so that replies reach 60 words or more: that is where
streaming speech and the sequential baseline differ the most.
"""

from typing import Final

TEXT_QUESTIONS: Final = (
    "Explain in a short paragraph how a rainbow forms.",
    "What should I pack for a weekend hiking trip? Answer in a short paragraph.",
    "Describe in a few sentences why the sky is blue.",
    "Give me a few tips for sleeping better, in a short paragraph.",
    "How do I make a good cup of tea? Explain in a few sentences.",
    "In a short paragraph, explain what causes the seasons on Earth.",
    "What are some simple ways to save money on groceries? Answer in a paragraph.",
    "Explain in a few sentences how a refrigerator keeps food cold.",
    "Tell me in a short paragraph why regular exercise is good for you.",
    "In a few sentences, how do bees make honey?",
    "What is a good way to start learning to cook? Answer in a short paragraph.",
    "Explain in a short paragraph how vaccines help the body fight disease.",
)

WARM_UP: Final = "Say hello in one sentence."
