"""Small, realistic cluster summaries for labeler tests."""

from __future__ import annotations

from clustering.types import ClusterSummary

CARD = (
    "My card payment was declined at the shop",
    "Why is my card payment still pending?",
    "A card payment went through twice",
    "The card payment was refused abroad",
    "Card payment shows the wrong amount",
    "How long does a card payment take to clear?",
)
TRANSFER = (
    "How do I send money to a friend abroad?",
    "My transfer has not arrived yet",
    "Can I cancel a bank transfer?",
    "What is the fee for an international transfer?",
    "The transfer was sent to the wrong account",
)
PIN = (
    "I forgot my PIN",
    "How can I change my PIN?",
    "My PIN is blocked after three tries",
    "Where do I find my PIN?",
    "Can I unblock my PIN in the app?",
)


def summary(
    cluster_id: int = 0,
    representatives: tuple[str, ...] = CARD,
    keywords: tuple[str, ...] = ("card", "payment", "declined", "pending"),
    goal: str | None = None,
    **kwargs: object,
) -> ClusterSummary:
    return ClusterSummary(
        cluster_id=cluster_id,
        size=len(representatives) * 10,
        share=0.1,
        keywords=keywords,
        representatives=representatives,
        goal=goal,
        neighbours=kwargs.pop("neighbours", (1,)),  # type: ignore[arg-type]
        neighbour_keywords=kwargs.pop("neighbour_keywords", (("transfer", "money"),)),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def three_summaries(goal: str | None = None) -> list[ClusterSummary]:
    return [
        summary(0, CARD, ("card", "payment", "declined", "pending"), goal),
        summary(1, TRANSFER, ("transfer", "money", "abroad", "account"), goal),
        summary(2, PIN, ("pin", "blocked", "change", "unblock"), goal),
    ]
