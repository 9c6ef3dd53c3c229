"""Segments declared in config, evaluated over profile + features, with membership history."""

from cdp_spark.segments.membership import (
    SegmentError,
    current_members,
    evaluate_segments,
    membership_updates,
    segment_changes,
    segment_frame,
    validate_segments,
)

__all__ = [
    "SegmentError",
    "current_members",
    "evaluate_segments",
    "membership_updates",
    "segment_changes",
    "segment_frame",
    "validate_segments",
]
