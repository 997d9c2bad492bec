"""Tests for jgnas.metrics: hand-computed cases, conventions, brute-force reference, jit/vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgnas.data.types import DataError, Interactions
from jgnas.metrics import (
    METRIC_NAMES,
    make_eval_set,
    population_rank_metrics,
    rank_metrics,
    rank_metrics_from_scores,
)


def inter(pairs):
    pairs = np.asarray(pairs, np.int32).reshape(-1, 2)
    n = pairs.shape[0]
    return Interactions(pairs[:, 0], pairs[:, 1], np.ones(n, np.float32), np.zeros(n, np.int64))


def as_np(result):
    return {k: np.asarray(v) for k, v in result.items()}


# Tiny case. item_emb = I_5, so score[u, i] = user_emb[u, i].
#   user 0: scores [5, 4, 3, 2, 1], train {0}, held-out {1, 3}
#           ranking (0 excluded): 1, 2, 3, 4 -> hits at ranks 0 and 2.
#   user 1: scores all 1 (ties -> lower index first), held-out {2}
#           ranking: 0, 1, 2, 3, 4 -> hit at rank 2.
#   user 2: train {0, 1}, no held-out -> skipped.
HAND_SCORES = np.array([[5, 4, 3, 2, 1], [1, 1, 1, 1, 1], [9, 9, 9, 9, 9]], np.float32)
HAND_TRAIN = inter([[0, 0], [2, 0], [2, 1]])
HAND_HELDOUT = inter([[0, 1], [0, 3], [1, 2]])
L3 = 1 / np.log2(3)  # discount of rank 1; rank 0 has 1, rank 2 has 1/log2(4) = 0.5
HAND_EXPECTED = {
    # K=2: user 0 hits 1 (rank 0) of 2 held-out; user 1 has no hit in {0, 1}.
    #   recall (1/2 + 0)/2; precision (1/2 + 0)/2; hit (1 + 0)/2; mrr (1/1 + 0)/2
    #   ndcg user 0: DCG = 1, IDCG over min(2, 2) = 2 ranks = 1 + L3.
    # K=3: user 0 hits 2 (ranks 0, 2); user 1 hits 1 (rank 2).
    #   recall (2/2 + 1/1)/2; precision (2/3 + 1/3)/2; hit 1; mrr (1 + 1/3)/2
    #   ndcg user 0: (1 + 0.5) / (1 + L3); user 1: 0.5 / 1 (IDCG over min(1, 3) = 1 rank).
    "recall": [0.25, 1.0],
    "precision": [0.25, 0.5],
    "hit": [0.5, 1.0],
    "mrr": [0.5, 2 / 3],
    "ndcg": [1 / (1 + L3) / 2, (1.5 / (1 + L3) + 0.5) / 2],
}


def hand_metrics(candidates=None, block_size=2, ks=(2, 3)):
    es = make_eval_set(
        3, 5, HAND_HELDOUT, [HAND_TRAIN], block_size=block_size, candidates=candidates
    )
    return es, as_np(rank_metrics(jnp.asarray(HAND_SCORES), jnp.eye(5), es, ks))


@pytest.mark.parametrize("block_size", [1, 2, 3, 256])
def test_hand_computed(block_size):
    es, got = hand_metrics(block_size=block_size)
    assert es.n_eval == 2
    assert sorted(np.asarray(es.users)[np.asarray(es.user_mask)].tolist()) == [0, 1]
    assert es.users.shape[0] % block_size == 0
    for name in METRIC_NAMES:
        np.testing.assert_allclose(got[name], HAND_EXPECTED[name], rtol=1e-6, err_msg=name)


def test_candidate_mask_hand():
    # Candidates {2, 3, 4}: user 0's held-out item 1 is not rankable and is dropped -> {3}.
    #   user 0 ranking: 2, 3, 4 -> hit at rank 1. K=2: recall 1, precision 1/2, hit 1,
    #   mrr 1/2, ndcg L3 / 1.
    #   user 1 ranking: 2, 3, 4 -> hit at rank 0. K=2: recall 1, precision 1/2, hit 1, mrr 1, ndcg 1.
    cand = np.array([False, False, True, True, True])
    es, got = hand_metrics(candidates=cand, ks=(2,))
    np.testing.assert_array_equal(np.asarray(es.n_heldout)[:2], [1, 1])
    expected = {"recall": 1.0, "precision": 0.5, "hit": 1.0, "mrr": 0.75, "ndcg": (L3 + 1) / 2}
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], [value], rtol=1e-6, err_msg=name)


def test_ties_rank_lower_index_first():
    # One user, all scores equal, held-out {3}: ranking 0,1,2,3,4 -> first hit at rank 3.
    es = make_eval_set(1, 5, inter([[0, 3]]), [])
    got = as_np(rank_metrics(jnp.ones((1, 2)), jnp.ones((5, 2)), es, (3, 4)))
    np.testing.assert_allclose(got["hit"], [0.0, 1.0])
    np.testing.assert_allclose(got["mrr"], [0.0, 0.25])
    # And the held-out item with the lowest index among ties is preferred: held-out {0} -> rank 0.
    es = make_eval_set(1, 5, inter([[0, 0]]), [])
    got = as_np(rank_metrics(jnp.ones((1, 2)), jnp.ones((5, 2)), es, (1,)))
    np.testing.assert_allclose(got["mrr"], [1.0])


def test_excluded_items_never_ranked():
    # Excluded items 0, 1 score highest; held-out item 2 must then be at rank 0.
    scores = jnp.asarray([[10.0, 9.0, 1.0, 0.0, 0.5]])
    es = make_eval_set(1, 5, inter([[0, 2]]), [inter([[0, 0]]), inter([[0, 1]])])
    got = as_np(rank_metrics(scores, jnp.eye(5), es, (1,)))
    np.testing.assert_allclose(got["recall"], [1.0])
    np.testing.assert_allclose(got["mrr"], [1.0])
    # Held-out items that are also excluded are not rankable, so the user is skipped.
    es = make_eval_set(2, 5, inter([[0, 0], [1, 2]]), [inter([[0, 0]])])
    assert es.n_eval == 1


def test_fewer_candidates_than_k_and_nan():
    # 5 items, items 0-2 excluded; held-out {3, 4}. K=5 leaves 3 slots at -inf.
    train = inter([[0, 0], [0, 1], [0, 2]])
    es = make_eval_set(1, 5, inter([[0, 3], [0, 4]]), [train])
    got = as_np(rank_metrics(jnp.asarray([[5.0, 5.0, 5.0, 1.0, 2.0]]), jnp.eye(5), es, (5,)))
    # ranking 4, 3 -> two hits; precision 2/5 (RecBole divides by K); recall 1; ndcg 1.
    np.testing.assert_allclose(got["precision"], [0.4])
    np.testing.assert_allclose(got["recall"], [1.0])
    np.testing.assert_allclose(got["ndcg"], [1.0], rtol=1e-6)
    # Held-out item 3 scores NaN: it is treated as -inf and never counted, even though
    # lax.top_k returns it among the -inf tail. (Scores given directly: through a matmul one
    # NaN would spread over the whole row.)
    scores = jnp.asarray([[5.0, 5.0, 5.0, np.nan, 2.0]])
    got = as_np(rank_metrics_from_scores(lambda users: scores[users], es, (5,)))
    np.testing.assert_allclose(got["recall"], [0.5])
    np.testing.assert_allclose(got["mrr"], [1.0])
    # A fully diverged model gives finite zeros.
    got = as_np(rank_metrics(jnp.full((1, 5), np.nan), jnp.eye(5), es, (1, 5)))
    for name in METRIC_NAMES:
        np.testing.assert_array_equal(got[name], [0.0, 0.0])


def test_no_evaluated_users_gives_zeros():
    es = make_eval_set(2, 4, Interactions.empty(), [inter([[0, 1]])], block_size=4)
    assert es.n_eval == 0
    got = as_np(rank_metrics(jnp.ones((2, 3)), jnp.ones((4, 3)), es, (2,)))
    for name in METRIC_NAMES:
        np.testing.assert_array_equal(got[name], [0.0])


def test_bad_input():
    with pytest.raises(DataError, match="heldout: item id out of range"):
        make_eval_set(2, 4, inter([[0, 4]]), [])
    with pytest.raises(DataError, match="exclude\\[0\\]: user id"):
        make_eval_set(2, 4, inter([[0, 1]]), [inter([[2, 0]])])
    with pytest.raises(DataError, match="candidates"):
        make_eval_set(2, 4, inter([[0, 1]]), [], candidates=np.ones(3, bool))
    es = make_eval_set(2, 4, inter([[0, 1]]), [])
    with pytest.raises(ValueError, match="ks"):
        rank_metrics(jnp.ones((2, 3)), jnp.ones((4, 3)), es, (5,))


# ---------------------------------------------------------------------------------------------
# Brute-force reference: plain numpy, one user at a time.


def reference_metrics(scores, n_items, heldout, exclude, candidates, ks):
    excl = {}
    for e in exclude:
        for u, i in zip(e.users.tolist(), e.items.tolist(), strict=True):
            excl.setdefault(u, set()).add(i)
    held = {}
    for u, i in zip(heldout.users.tolist(), heldout.items.tolist(), strict=True):
        if candidates[i] and i not in excl.get(u, set()):
            held.setdefault(u, set()).add(i)
    totals = {name: np.zeros(len(ks)) for name in METRIC_NAMES}
    for u, items in held.items():
        s = scores[u]
        rankable = np.array(
            [i for i in range(n_items) if candidates[i] and i not in excl.get(u, set())], int
        )
        rankable = rankable[~np.isnan(s[rankable])]
        ranking = rankable[np.argsort(-s[rankable], kind="stable")]
        for j, k in enumerate(ks):
            top = ranking[:k]
            hits = np.array([i in items for i in top], float)
            dcg = np.sum(hits / np.log2(np.arange(len(top)) + 2))
            idcg = np.sum(1 / np.log2(np.arange(min(len(items), k)) + 2))
            totals["recall"][j] += hits.sum() / len(items)
            totals["precision"][j] += hits.sum() / k
            totals["hit"][j] += float(hits.sum() > 0)
            totals["ndcg"][j] += dcg / idcg
            totals["mrr"][j] += 1 / (np.argmax(hits) + 1) if hits.any() else 0.0
    return {name: v / max(len(held), 1) for name, v in totals.items()}


def random_problem(seed, n_users=23, n_items=17, d=4, p=1):
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, size=n_users * n_items // 2, replace=False)
    pairs = np.stack([keys // n_items, keys % n_items], 1)
    n = len(pairs)
    train, valid, test = (
        inter(pairs[: n // 2]),
        inter(pairs[n // 2 : 3 * n // 4]),
        inter(pairs[3 * n // 4 :]),
    )
    # Small integer embeddings make exact score ties common, exercising tie-breaking.
    user_emb = rng.integers(-2, 3, (p, n_users, d)).astype(np.float32)
    item_emb = rng.integers(-2, 3, (p, n_items, d)).astype(np.float32)
    return train, valid, test, user_emb, item_emb


@pytest.mark.parametrize("seed, block_size", [(0, 5), (0, 64), (1, 1), (1, 8)])
def test_matches_bruteforce(seed, block_size):
    n_users, n_items, ks = 23, 17, (1, 3, 5, 17)
    train, valid, test, ue, ie = random_problem(seed, n_users, n_items)
    rng = np.random.default_rng(seed + 100)
    candidates = rng.random(n_items) < 0.7 if seed == 1 else np.ones(n_items, bool)
    if seed == 1:
        ue = ue.copy()
        ue[0, 3] = np.nan  # one user with NaN scores
    for heldout, exclude in [(valid, [train]), (test, [train, valid])]:
        es = make_eval_set(n_users, n_items, heldout, exclude, block_size, candidates)
        got = as_np(rank_metrics(jnp.asarray(ue[0]), jnp.asarray(ie[0]), es, ks))
        want = reference_metrics(ue[0] @ ie[0].T, n_items, heldout, exclude, candidates, ks)
        for name in METRIC_NAMES:
            np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)


def test_population_vmap_equals_loop_and_jit_equals_nojit():
    n_users, n_items, ks = 23, 17, (2, 5)
    train, valid, _, ue, ie = random_problem(3, n_users, n_items, p=3)
    es = make_eval_set(n_users, n_items, valid, [train], block_size=7)
    pop = as_np(population_rank_metrics(jnp.asarray(ue), jnp.asarray(ie), es, ks))
    vm = jax.vmap(rank_metrics, in_axes=(0, 0, None, None))(
        jnp.asarray(ue), jnp.asarray(ie), es, ks
    )
    for p in range(3):
        solo = as_np(rank_metrics(jnp.asarray(ue[p]), jnp.asarray(ie[p]), es, ks))
        for name in METRIC_NAMES:
            assert pop[name].shape == (3, len(ks))
            np.testing.assert_allclose(pop[name][p], solo[name], atol=1e-6, err_msg=name)
            np.testing.assert_allclose(np.asarray(vm[name])[p], solo[name], atol=1e-6)
    with jax.disable_jit():
        nojit = as_np(rank_metrics(jnp.asarray(ue[p]), jnp.asarray(ie[p]), es, ks))
    for name in METRIC_NAMES:
        np.testing.assert_allclose(nojit[name], solo[name], atol=1e-6, err_msg=name)
    # The population members differ, so this comparison is not vacuous.
    assert not np.allclose(pop["recall"][0], pop["recall"][1]) or not np.allclose(
        pop["ndcg"][0], pop["ndcg"][2]
    )


def test_no_recompilation_on_same_shapes():
    n_users, n_items, ks = 23, 17, (4,)
    train, valid, _, ue, ie = random_problem(4, n_users, n_items, p=2)
    es = make_eval_set(n_users, n_items, valid, [train], block_size=32)
    # Same padded shapes, different contents (and a different number of evaluated users).
    es2 = es.replace(user_mask=es.user_mask.at[0].set(False))
    population_rank_metrics(jnp.asarray(ue), jnp.asarray(ie), es, ks)
    size = population_rank_metrics._cache_size()
    population_rank_metrics(jnp.asarray(ue) + 1.0, jnp.asarray(ie), es, ks)
    population_rank_metrics(jnp.asarray(ue), jnp.asarray(ie), es2, ks)
    assert population_rank_metrics._cache_size() == size
    population_rank_metrics(jnp.asarray(ue), jnp.asarray(ie), es, (4, 5))  # new static ks
    assert population_rank_metrics._cache_size() == size + 1


def test_score_fn_variant():
    n_users, n_items, ks = 23, 17, (3,)
    train, valid, _, ue, ie = random_problem(5, n_users, n_items)
    es = make_eval_set(n_users, n_items, valid, [train], block_size=8)
    u, i = jnp.asarray(ue[0]), jnp.asarray(ie[0])
    got = as_np(jax.jit(lambda e: rank_metrics_from_scores(lambda b: u[b] @ i.T, e, ks))(es))
    want = as_np(rank_metrics(u, i, es, ks))
    for name in METRIC_NAMES:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6)


def test_memory_is_bounded_by_the_block_not_users_x_items():
    # The compiled program's scratch memory is set by [P, block, n_items], whatever n_users is:
    # ten times the users, same temporaries, far below one [U, I] score matrix.
    rng = np.random.default_rng(0)
    n_items, d, block, P = 2000, 8, 64, 2
    temp = {}
    for n_users in (500, 5000):
        held = inter(np.stack([np.arange(n_users), rng.integers(0, n_items, n_users)], 1))
        train = inter(np.stack([np.arange(n_users), rng.integers(0, n_items, n_users)], 1))
        es = make_eval_set(n_users, n_items, held, [train], block_size=block)
        emb = lambda n: jax.ShapeDtypeStruct((P, n, d), jnp.float32)  # noqa: E731
        compiled = population_rank_metrics.lower(emb(n_users), emb(n_items), es, ks=(20,)).compile()
        temp[n_users] = compiled.memory_analysis().temp_size_in_bytes
    assert temp[5000] <= temp[500] * 1.05
    assert temp[5000] < P * 5000 * n_items * 4 / 10
