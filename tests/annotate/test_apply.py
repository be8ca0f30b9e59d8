"""Asking an annotator about a dataset's pairs (``outpool.annotate.apply``): the request carries the
pairs' own images, and only accepted pairs come back, with the crowd's labels and confidences."""

from __future__ import annotations

import numpy as np
import pytest

from outpool.annotate import CrowdConfig, SimulatedCrowd
from outpool.annotate.apply import accepted_pairs, label_pairs, request_for
from outpool.data import AttributeInfo, Dataset, ImageTable, PairTable

# id -> (red, green) of a one-colour image; "blank" is all zero (illegible to ChannelJudge)
COLOURS = {
    "dark": (40, 128),
    "bright": (200, 128),
    "mid": (120, 128),
    "mid2": (120, 128),  # the same picture as "mid": no difference to see
    "grassy": (120, 250),  # as red as "mid", much greener
}


def toy_dataset() -> Dataset:
    ids = [*COLOURS, "blank"]
    pixels = np.zeros((len(ids), 64, 64, 3), np.uint8)
    for i, (red, green) in enumerate(COLOURS.values()):
        pixels[i] = (red, green, 7)
    table = ImageTable(ids=np.array(ids), pixels=pixels)
    return Dataset(
        name="toy", attributes=(AttributeInfo("red"), AttributeInfo("green")), images={"t": table}
    )


def toy_pairs() -> PairTable:
    return PairTable.build(
        ids=["bright-dark", "dark-mid", "mid-mid2", "bright-blank", "mid-grassy"],
        attribute=["red", "red", "red", "red", "green"],
        a=["bright", "dark", "mid", "bright", "mid"],
        b=["dark", "mid", "mid2", "blank", "grassy"],
        label=0,  # what the table said before: the crowd's answer replaces it
        confidence=0.25,
        source=["real", "pseudo", "synthetic", "synthetic", "real"],
        round=[0, 1, 2, 3, 4],
    )


def crowd(judge: object, **changes: object) -> SimulatedCrowd:
    """15 votes a pair from equally noisy workers: a pair with no visible difference is
    answered "equal" by about half of them and +1 / -1 by the rest, so it never reaches the 0.9
    agreement required (at most 0.8 over 300 seeds); 0.3 apart is 6 noise units: every worker
    sees it."""
    settings: dict[str, object] = {
        "votes_per_pair": 15,
        "noise": 0.05,
        "worker_noise_spread": 0.0,
        "min_agreement": 0.9,
        **changes,
    }
    return SimulatedCrowd(judge, CrowdConfig(**settings))  # type: ignore[arg-type]


def test_the_request_holds_the_pairs_images_in_order() -> None:
    ds, pairs = toy_dataset(), toy_pairs()
    request = request_for(ds, pairs)
    np.testing.assert_array_equal(request.ids, pairs.ids)
    np.testing.assert_array_equal(request.attribute, pairs.attribute)
    np.testing.assert_array_equal(request.images_a, ds.lookup(pairs.a))
    np.testing.assert_array_equal(request.images_b, ds.lookup(pairs.b))
    assert request.images_a[0, 0, 0].tolist() == [200, 128, 7]  # "bright"
    assert request.images_b[3].max() == 0  # "blank"


def test_label_pairs_keeps_only_accepted_pairs_with_the_crowds_labels(judge) -> None:
    ds, pairs = toy_dataset(), toy_pairs()
    accepted, result = label_pairs(ds, pairs, crowd(judge))
    # the full result answers every pair asked, in order, with every vote
    np.testing.assert_array_equal(result.pair_ids, pairs.ids)
    np.testing.assert_array_equal(
        result.status, ["accepted", "accepted", "pruned", "rejected", "accepted"]
    )
    assert len(result.votes) == 5 * 15
    assert set(result.votes.pair_id.tolist()) == set(pairs.ids.tolist())
    # accepted: a brighter red, a darker red, and on "green" the greener b (red alone is equal)
    np.testing.assert_array_equal(accepted.ids, ["bright-dark", "dark-mid", "mid-grassy"])
    np.testing.assert_array_equal(accepted.label, [1, -1, -1])
    np.testing.assert_array_equal(accepted.confidence, [1.0, 1.0, 1.0])  # 6+ noise units: sure
    # the rest of each row is the pair as asked
    np.testing.assert_array_equal(accepted.attribute, ["red", "red", "green"])
    np.testing.assert_array_equal(accepted.a, ["bright", "dark", "mid"])
    np.testing.assert_array_equal(accepted.b, ["dark", "mid", "grassy"])
    np.testing.assert_array_equal(accepted.source, ["real", "pseudo", "real"])
    np.testing.assert_array_equal(accepted.round, [0, 1, 4])
    # the accepted rows are exactly the result's accepted rows
    keep = result.accepted_indices()
    np.testing.assert_array_equal(keep, [0, 1, 4])
    np.testing.assert_array_equal(accepted.label, result.label[keep])
    np.testing.assert_array_equal(accepted.confidence, result.confidence[keep])


def test_a_noiseless_crowd_accepts_every_legible_pair(judge) -> None:
    ds, pairs = toy_dataset(), toy_pairs()
    accepted, result = label_pairs(
        ds, pairs, crowd(judge, noise=0.0, reject_noise=0.0, min_agreement=0.6)
    )
    np.testing.assert_array_equal(
        result.status, ["accepted", "accepted", "accepted", "rejected", "accepted"]
    )
    np.testing.assert_array_equal(
        accepted.ids, ["bright-dark", "dark-mid", "mid-mid2", "mid-grassy"]
    )
    np.testing.assert_array_equal(accepted.label, [1, -1, 0, -1])  # the identical pair: equal
    assert isinstance(accepted, PairTable)


def test_a_result_for_other_pairs_is_refused(judge) -> None:
    ds, pairs = toy_dataset(), toy_pairs()
    _, result = label_pairs(ds, pairs, crowd(judge))
    reordered = pairs.subset(np.array([1, 0, 2, 3, 4]))
    with pytest.raises(ValueError, match="does not answer these pairs in this order"):
        accepted_pairs(reordered, result)
    with pytest.raises(ValueError, match="does not answer these pairs"):
        accepted_pairs(pairs.subset(np.arange(4)), result)
