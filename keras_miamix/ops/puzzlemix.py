"""PuzzleMix's mask: saliency, the labelling energy, its solvers, transport.

Kim, Choo and Song, "Puzzle Mix: Exploiting Saliency and Local Statistics
for Optimal Mixup", ICML 2020, as the official code (snu-mllab/PuzzleMix,
`mixup.py`: `mixup_graph`, `graphcut_multi`, `neigh_penalty`,
`mask_transport`, `transport_image`), in channels-last, batch-first form:

1. `input_saliency`: sqrt of the channel mean of the squared gradient of the
   loss with respect to the (normalised) input.
2. `graph_terms`: the image is cut into `block_num` x `block_num` blocks; the
   unary cost of showing a block of the anchor is the partner's pooled,
   per-image normalised saliency there (and vice versa), plus half the mean
   absolute colour difference across each block border (of the images pooled
   by `neigh_size`) for either neighbour, weighted by beta * gamma; the
   pairwise weight of a border is beta plus the part of that difference the
   unaries do not carry (the official re-definition, verbatim).
3. `labelling_costs` adds the prior: with mask levels 1 - l / (n_labels - 1)
   (the anchor's share), label l costs eta / block_num^2 times -log of the
   binomial probability of l partner "draws" in n_labels - 1 at lambda.
   `labelling_energy` is the grid energy that gco minimises:
   unary + sum over borders of weight * (l_p - l_q)^2 / (n_labels - 1)^2.
4. Solvers: `icm_labels` (the default, pure backend ops, vectorised over the
   batch, XLA-compatible): iterated conditional modes whose moves solve
   whole rows and columns exactly (dynamic programming on each line given
   its neighbours), started from the unary minimum and from every constant
   labelling, the lowest final energy kept; `gco_labels` runs gco-wrapper's alpha-beta swap on
   the host, on the official integer costs (`solver="gco"`).
5. `mask_transport` / `transport_blocks`: the official greedy transport of
   each image's salient blocks into the region its mask keeps (the partner's
   into 1 - mask), at `t_size` pixel blocks.

Images need not be square: the grids are `block_num` x `block_num` over
(H, W) with blocks of (H // block_num, W // block_num) pixels (pooling drops
the remainder, as `avg_pool2d` does), and the final mask is resized to the
image by nearest neighbour (`F.interpolate`'s default). Transport moves the
blocks of the top-left T*t_h x T*t_w pixels; a remainder of fewer than
t_size rows or columns stays in place (the official code needs divisible
sizes).
"""

import math

import numpy as np

from keras_miamix import backend as kb
from keras_miamix.backend import numpy as knp

EPS = 1e-8


def _f32(x):
    return kb.cast(kb.convert(x), "float32")


def input_saliency(gradients, channel_scale=None):
    """sqrt(mean over channels of (g * s)^2), (B, H, W), for the input
    gradients `g` (B, H, W, C). `channel_scale` (C,) turns a gradient with
    respect to the model's input into one with respect to the normalised
    input the official code differentiates (the normalisation's std, in
    input units)."""
    g = _f32(gradients)
    if channel_scale is not None:
        g = g * _f32(channel_scale)
    return knp.sqrt(knp.mean(g * g, axis=-1))


def block_pool(x, rows, cols):
    """Averages of (B, H, W, ...) `x` over a rows x cols grid of blocks of
    (H // rows, W // cols) pixels from the top left (`avg_pool2d`)."""
    shape = x.shape
    bh, bw = shape[1] // rows, shape[2] // cols
    extra = tuple(shape[3:])
    x = x[:, :rows * bh, :cols * bw]
    x = knp.reshape(x, (-1, rows, bh, cols, bw) + extra)
    return knp.mean(x, axis=(2, 4))


def normalise_per_image(values):
    """(B, n, n) values divided by their sum per image (0 where it is 0)."""
    total = knp.sum(values, axis=(1, 2), keepdims=True)
    return knp.where(total > 0, values / knp.where(total > 0, total, 1.0), 0.0)


def neigh_penalty(first, second, k, n):
    """The official `neigh_penalty` on (B, h, w, C) pooled images: the mean
    absolute channel difference between `first` on one side of each block
    border and `second` on the other, averaged along the border; blocks are
    `k` pooled pixels, `n` to a side. Returns (B, n - 1, n) across row
    borders and (B, n, n - 1) across column borders."""
    rows = first[:, :-1, :n * k] - second[:, 1:, :n * k]
    rows = rows[:, k - 1:k - 1 + k * (n - 1):k]
    cols = first[:, :n * k, :-1] - second[:, :n * k, 1:]
    cols = cols[:, :, k - 1:k - 1 + k * (n - 1):k]
    rows = knp.mean(knp.reshape(knp.mean(knp.abs(rows), axis=-1), (-1, n - 1, n, k)), axis=-1)
    cols = knp.mean(knp.reshape(knp.mean(knp.abs(cols), axis=-1), (-1, n, k, n - 1)), axis=2)
    return rows, cols


def graph_terms(images01, saliency, partner_index, block_num, beta=1.2, gamma=0.5,
                neigh_size=4):
    """The unary and pairwise terms of `mixup_graph`.

    Args:
        images01: (B, H, W, C) images in [0, 1] (the official `input * std +
            mean`).
        saliency: (B, H, W) from `input_saliency`.
        partner_index: (B,) the partner of each sample.
        block_num: blocks to a side (a Python int >= 2).
        beta, gamma, neigh_size: the official smoothness weight, data
            smoothness weight and pooling size.

    Returns:
        dict with `unary_anchor` (the cost of showing the anchor, (B, n, n)),
        `unary_partner` (of showing the partner), `pairwise_rows`
        (B, n - 1, n), `pairwise_cols` (B, n, n - 1), `beta` (normalised,
        beta / block_num / 16) and `saliency` (the normalised block saliency
        of each anchor, (B, n, n)).
    """
    n = int(block_num)
    height, width = images01.shape[1], images01.shape[2]
    block = min(height, width) // n
    neigh = max(1, min(int(neigh_size), block))
    k = block // neigh
    beta = beta / n / 16.0
    own = normalise_per_image(block_pool(_f32(saliency), n, n))
    partner = kb.gather(own, partner_index)
    pooled = block_pool(_f32(images01), height // neigh, width // neigh)
    pooled_partner = kb.gather(pooled, partner_index)
    # pw[a][b]: `a` above / left of the border, `b` below / right; 0 the
    # partner, 1 the anchor (the official pw_x[:, a, b]).
    sides = (pooled_partner, pooled)
    pw = [[neigh_penalty(sides[a], sides[b], k, n) for b in (0, 1)] for a in (0, 1)]
    scale = beta * gamma
    rows = [[scale * pw[a][b][0] for b in (0, 1)] for a in (0, 1)]
    cols = [[scale * pw[a][b][1] for b in (0, 1)] for a in (0, 1)]

    def pad(x, axis, before):
        widths = [(0, 0)] * 3
        widths[axis] = (1, 0) if before else (0, 1)
        return knp.pad(x, widths)

    # The official unary2 (shows the anchor: costs the partner's saliency)
    # and unary1 (shows the partner).
    show_anchor = (partner
                   + pad((rows[1][0] + rows[1][1]) / 2.0, 1, False)
                   + pad((rows[0][1] + rows[1][1]) / 2.0, 1, True)
                   + pad((cols[1][0] + cols[1][1]) / 2.0, 2, False)
                   + pad((cols[0][1] + cols[1][1]) / 2.0, 2, True))
    show_partner = (own
                    + pad((rows[0][1] + rows[0][0]) / 2.0, 1, False)
                    + pad((rows[1][0] + rows[0][0]) / 2.0, 1, True)
                    + pad((cols[0][1] + cols[0][0]) / 2.0, 2, False)
                    + pad((cols[1][0] + cols[0][0]) / 2.0, 2, True))
    return {
        "unary_anchor": show_anchor,
        "unary_partner": show_partner,
        "pairwise_rows": (rows[1][0] + rows[0][1] - rows[1][1] - rows[0][0]) / 2.0,
        "pairwise_cols": (cols[1][0] + cols[0][1] - cols[1][1] - cols[0][0]) / 2.0,
        "beta": beta,
        "saliency": own,
    }


def label_prior(lam, n_labels, eta, block_num):
    """(B, n_labels) prior costs: eta / block_num^2 * -log(P(l) + 1e-8), P the
    binomial probability of l partner draws out of n_labels - 1 at lambda
    (the official's n_labels 2, 3 and 4 cases, for any n_labels >= 2)."""
    lam = knp.reshape(_f32(lam), (-1, 1))
    draws = n_labels - 1
    probs = [math.comb(draws, i) * lam ** (draws - i) * (1.0 - lam) ** i
             for i in range(n_labels)]
    prior = -knp.log(knp.concatenate(probs, axis=1) + EPS)
    return eta * prior / float(block_num * block_num)


def label_levels(n_labels):
    """The anchor's share of each label, 1 - l / (n_labels - 1)."""
    return [1.0 - i / (n_labels - 1) for i in range(n_labels)]


def pairwise_table(n_labels):
    return np.array([[(i - j) ** 2 / (n_labels - 1) ** 2 for j in range(n_labels)]
                     for i in range(n_labels)], np.float32)


def labelling_costs(terms, lam, n_labels=3, eta=0.2, block_num=None):
    """(B, n, n, n_labels) unary costs of every label: the anchor's share m
    costs m * unary_anchor + (1 - m) * unary_partner + prior (official
    `graphcut_multi`, before its integer scaling)."""
    n = terms["unary_anchor"].shape[1] if block_num is None else block_num
    prior = label_prior(lam, n_labels, eta, n)
    costs = [m * terms["unary_anchor"] + (1.0 - m) * terms["unary_partner"]
             + prior[:, i, None, None] for i, m in enumerate(label_levels(n_labels))]
    return knp.stack(costs, axis=-1)


def _edge_weights(terms):
    return terms["pairwise_rows"] + terms["beta"], terms["pairwise_cols"] + terms["beta"]


def labelling_energy(costs, terms, labels):
    """The grid energy of integer `labels` (B, n, n): the chosen unary costs
    plus, over every border, (pairwise + beta) * (l_p - l_q)^2 /
    (n_labels - 1)^2. Returns (B,)."""
    n_labels = costs.shape[-1]
    onehot = kb.nn.one_hot(kb.cast(labels, "int32"), n_labels, axis=-1)
    unary = knp.sum(costs * onehot, axis=(1, 2, 3))
    rows_w, cols_w = _edge_weights(terms)
    lab = _f32(labels)
    scale = float((n_labels - 1) ** 2)
    d_rows = (lab[:, 1:] - lab[:, :-1]) ** 2 / scale
    d_cols = (lab[:, :, 1:] - lab[:, :, :-1]) ** 2 / scale
    return unary + knp.sum(rows_w * d_rows, axis=(1, 2)) + knp.sum(cols_w * d_cols, axis=(1, 2))


def _vertical_costs(costs, rows_w, labels, table):
    """Each cell's cost of each label given the labels of the rows above and
    below it (the cells of a row are then a chain)."""
    n_labels = costs.shape[-1]
    pair = knp.matmul(kb.nn.one_hot(labels, n_labels, axis=-1), table)  # (S, n, n, K)
    rw = rows_w[..., None]
    zero_row = knp.zeros_like(pair[:, :1])
    above = knp.concatenate([zero_row, rw * pair[:, :-1]], axis=1)
    below = knp.concatenate([rw * pair[:, 1:], zero_row], axis=1)
    return costs + above + below


def _chain_minimum(unary, weights, table):
    """The exact minimum of every row of (S, R, C, K) costs as a chain whose
    neighbours (c, c + 1) cost weights[..., c] * table[l, l'], by dynamic
    programming (Viterbi). Returns int32 labels (S, R, C)."""
    cols = unary.shape[2]
    best = unary[:, :, 0]
    back = []
    for c in range(1, cols):
        step = best[..., :, None] + weights[:, :, c - 1, None, None] * table  # (S, R, K, K)
        back.append(kb.cast(knp.argmin(step, axis=-2), "int32"))
        best = unary[:, :, c] + knp.min(step, axis=-2)
    label = kb.cast(knp.argmin(best, axis=-1), "int32")
    labels = [label]
    for pointers in reversed(back):
        label = knp.take_along_axis(pointers, label[..., None], axis=-1)[..., 0]
        labels.append(label)
    return knp.stack(labels[::-1], axis=2)


def icm_labels(costs, terms, sweeps=8):
    """Minimises `labelling_energy` by block iterated conditional modes on
    lines: the even rows, independent chains given the odd rows, each take
    their exact minimum at once (`_chain_minimum`); then the odd rows, the
    even columns and the odd columns; `sweeps` times. No move raises the
    energy, and each includes every single-cell move. It runs from the unary
    minimum and from every constant labelling (batched together) and keeps
    each sample's lowest final energy. Returns int32 labels (B, n, n)."""
    n, n_labels = costs.shape[1], costs.shape[-1]
    batch = kb.shape(costs)[0]
    starts = n_labels + 1
    rows_w, cols_w = _edge_weights(terms)
    tile = lambda x: knp.concatenate([x] * starts, axis=0)  # noqa: E731
    all_costs, all_rows, all_cols = tile(costs), tile(rows_w), tile(cols_w)
    first = kb.cast(knp.argmin(costs, axis=-1), "int32")
    constant = [knp.full_like(first, i) for i in range(n_labels)]
    labels = knp.concatenate([first, *constant], axis=0)
    table = kb.convert(pairwise_table(n_labels))
    parity = [kb.convert((np.arange(n) % 2 == p)[None, :, None]) for p in (0, 1)]
    t_costs = knp.transpose(all_costs, (0, 2, 1, 3))
    t_rows, t_cols = knp.transpose(all_cols, (0, 2, 1)), knp.transpose(all_rows, (0, 2, 1))

    def lines(labels, line_costs, between, along, which):
        local = _vertical_costs(line_costs, between, labels, table)
        return knp.where(which, _chain_minimum(local, along, table), labels)

    def sweep(_, labels):
        for p in parity:
            labels = lines(labels, all_costs, all_rows, all_cols, p)
        labels = knp.transpose(labels, (0, 2, 1))
        for p in parity:
            labels = lines(labels, t_costs, t_rows, t_cols, p)
        return knp.transpose(labels, (0, 2, 1))

    labels = kb.fori_loop(int(sweeps), sweep, labels)
    all_terms = {"pairwise_rows": all_rows, "pairwise_cols": all_cols, "beta": 0.0}
    energy = knp.reshape(labelling_energy(all_costs, all_terms, labels), (starts, batch))
    pick = kb.cast(knp.argmin(energy, axis=0), "int32")
    index = pick * batch + kb.cast(knp.arange(batch), "int32")
    return kb.gather(knp.reshape(labels, (-1, n, n)), index)


def _gco_batch(costs, rows_w, cols_w):
    import gco

    n_labels = costs.shape[-1]
    table = pairwise_table(n_labels)
    out = np.empty(costs.shape[:3], np.int32)
    for b in range(costs.shape[0]):
        flat = gco.cut_grid_graph(costs[b], table, rows_w[b], cols_w[b], algorithm="swap")
        out[b] = np.asarray(flat).reshape(costs.shape[1:3])
    return out


def gco_labels(costs, terms):
    """The official solver: gco-wrapper's alpha-beta swap per image on the
    host, on the int32 costs of `graphcut_multi` (scaled by 1000 * block_num^2,
    truncated). Not for XLA."""
    n = costs.shape[1]
    large = float(1000 * n ** 2)
    rows_w, cols_w = _edge_weights(terms)
    int32 = lambda x: kb.cast(large * x, "int32")  # noqa: E731 (truncates)
    return kb.host_call(_gco_batch, (int32(costs), int32(rows_w), int32(cols_w)),
                        tuple(kb.shape(costs)[:3]), np.int32)


def labels_to_mask(labels, n_labels):
    """Integer labels to the anchor's share, 1 - l / (n_labels - 1)."""
    return 1.0 - _f32(labels) / float(n_labels - 1)


def nearest_resize(grid, height, width):
    """(B, h, w) to (B, height, width) by nearest neighbour, source
    floor(i * h / height) (`F.interpolate`'s default)."""
    h, w = grid.shape[1], grid.shape[2]
    rows = np.floor(np.arange(height) * (h / height)).astype(np.int32)
    cols = np.floor(np.arange(width) * (w / width)).astype(np.int32)
    grid = kb.gather(grid, kb.convert(rows), axis=1)
    return kb.gather(grid, kb.convert(cols), axis=2)


def cost_matrix(rows, cols):
    """The official transport cost between blocks of a rows x cols grid:
    squared grid distance / (side - 1)^2 (side the longer one)."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    d = (r[:, None] - r[None]) ** 2 + (c[:, None] - c[None]) ** 2
    return (d / float(max(rows, cols) - 1) ** 2).astype(np.float32)


def mask_transport(mask, saliency, eps=0.8):
    """The official `mask_transport` for (B, T, T') block masks and
    saliency: cost[i, j] = eps * C[i, j] - saliency_i * (mask_j > 0); each
    of T iterations lets every block claim its cheapest destination, each
    destination keep its cheapest claimant, and the losers' claims cost 1
    more. Returns the final plan (B, N, N), plan[b, i, j] = 1 when block i
    moves to j (N = T * T')."""
    rows, cols = mask.shape[1], mask.shape[2]
    blocks = rows * cols
    c = kb.convert(cost_matrix(rows, cols))
    z = kb.cast(knp.reshape(mask, (-1, 1, blocks)) > 0, "float32")
    cost = eps * c[None] - knp.reshape(_f32(saliency), (-1, blocks, 1)) * z

    def step(_, state):
        cost, _ = state
        plan = kb.nn.one_hot(knp.argmin(cost, axis=-1), blocks, axis=-1)
        fight = plan * cost
        win = kb.nn.one_hot(knp.argmin(fight, axis=-2), blocks, axis=1) * plan
        return cost + (1.0 - win) * plan, win

    _, win = kb.fori_loop(max(rows, cols), step, (cost, knp.zeros_like(cost)))
    return win


def transport_blocks(images, plan, rows, cols):
    """Moves the (t_h, t_w) pixel blocks of a rows x cols grid of (B, H, W, C)
    images by `plan` (`transport_image`): destination j gets the sum of the
    blocks i with plan[i, j] = 1 (none: zeros). Pixels beyond the grid stay."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    th, tw = height // rows, width // cols
    core = images[:, :rows * th, :cols * tw]
    blocks = knp.reshape(core, (-1, rows, th, cols, tw, channels))
    blocks = knp.reshape(knp.transpose(blocks, (0, 1, 3, 2, 4, 5)),
                         (-1, rows * cols, th * tw * channels))
    moved = knp.einsum("bij,bip->bjp", kb.cast(plan, blocks.dtype), blocks)
    moved = knp.reshape(moved, (-1, rows, cols, th, tw, channels))
    moved = knp.reshape(knp.transpose(moved, (0, 1, 3, 2, 4, 5)),
                        (-1, rows * th, cols * tw, channels))
    if cols * tw < width:
        moved = knp.concatenate([moved, images[:, :rows * th, cols * tw:]], axis=2)
    if rows * th < height:
        moved = knp.concatenate([moved, images[:, rows * th:]], axis=1)
    return moved


def transport_grid(height, width, block_num, t_size):
    """(rows, cols) of the transport grid: blocks of min(t_size, block) pixels
    (block the side // block_num); t_size -1 means the mask's own blocks."""
    block = min(height, width) // block_num
    if t_size == -1 or t_size >= block:
        return block_num, block_num
    return height // t_size, width // t_size


def puzzle_mix(images, images01, saliency, partner_index, lam, block_num, *, beta=1.2,
               gamma=0.5, eta=0.2, neigh_size=4, n_labels=3, transport=True, t_eps=0.8,
               t_size=4, solver="icm", sweeps=8, noise=None, noise_anchor=None,
               noise_partner=None, value_range=(0.0, 255.0), return_moved=False):
    """The official `mixup_graph` for one `block_num` (a Python int).

    Args:
        images: (B, H, W, C) float images in `value_range`.
        images01: the same in [0, 1] (for the smoothness terms).
        saliency: (B, H, W) `input_saliency` of the anchors.
        partner_index: (B,) int32.
        lam: (B,) the anchor's target share (the prior's lambda).
        block_num: blocks to a side.
        noise: optional (B, H, W, C) adversarial noise in [0, 1] units,
            added (then clipped to the range) to the anchors where
            `noise_anchor` and to the partners where `noise_partner` (scalar
            booleans) hold, after the mask is found (official order).
        solver: "icm" or "gco". The other arguments are the official ones.

    Returns:
        (mixed images (B, H, W, C), masks (B, H, W, 1): the anchor's share
        of each pixel, label weights (B,): their means); with
        `return_moved`, also the transported anchors and partners.
    """
    height, width = images.shape[1], images.shape[2]
    terms = graph_terms(images01, saliency, partner_index, block_num, beta, gamma,
                        neigh_size)
    costs = labelling_costs(terms, lam, n_labels, eta, block_num)
    labels = gco_labels(costs, terms) if solver == "gco" else icm_labels(costs, terms, sweeps)
    grid = labels_to_mask(labels, n_labels)
    first = _f32(images)
    second = kb.gather(first, partner_index)
    if noise is not None:
        low, high = value_range
        span = high - low
        noisy = lambda x, n: knp.clip(x + span * n, low, high)  # noqa: E731
        keep = lambda flag, a, b: knp.where(kb.convert(flag), a, b)  # noqa: E731
        first = keep(noise_anchor, noisy(first, noise), first)
        second = keep(noise_partner, noisy(second, kb.gather(noise, partner_index)), second)
    if transport:
        rows, cols = transport_grid(height, width, block_num, t_size)
        t_grid = nearest_resize(grid, rows, cols)
        sal = normalise_per_image(block_pool(_f32(saliency), rows, cols))
        first = transport_blocks(first, mask_transport(t_grid, sal, t_eps), rows, cols)
        second = transport_blocks(second, mask_transport(1.0 - t_grid, kb.gather(
            sal, partner_index), t_eps), rows, cols)
    mask = nearest_resize(grid, height, width)[..., None]
    mixed = mask * first + (1.0 - mask) * second
    weights = knp.mean(mask, axis=(1, 2, 3))
    if return_moved:
        return mixed, mask, weights, first, second
    return mixed, mask, weights
