"""A NumPy transcription of the official PuzzleMix code (snu-mllab/PuzzleMix,
`mixup.py`), channels first as there, for the tests: `mixup_graph`'s terms,
`graphcut_multi`, `mask_transport`, `transport_image` and the final mix.
Torch calls are replaced by their NumPy equivalents (`avg_pool2d` over
non-overlapping windows, `F.interpolate(mode="nearest")`, `min(dim)[1]` as
the first minimum)."""

import numpy as np


def avg_pool2d(x, kh, kw=None):
    kw = kh if kw is None else kw
    *lead, h, w = x.shape
    h2, w2 = h // kh, w // kw
    x = x[..., :h2 * kh, :w2 * kw].reshape(*lead, h2, kh, w2, kw)
    return x.mean(axis=(-3, -1))


def interpolate_nearest(x, size):
    h, w = x.shape[-2:]
    rows = np.floor(np.arange(size) * (h / size)).astype(int)
    cols = np.floor(np.arange(size) * (w / size)).astype(int)
    return x[..., rows, :][..., cols]


def cost_matrix(width):
    c = np.zeros([width ** 2, width ** 2], dtype=np.float32)
    for m_i in range(width ** 2):
        i1, j1 = m_i // width, m_i % width
        for m_j in range(width ** 2):
            i2, j2 = m_j // width, m_j % width
            c[m_i, m_j] = abs(i1 - i2) ** 2 + abs(j1 - j2) ** 2
    return c / (width - 1) ** 2


def neigh_penalty(input1, input2, k):
    pw_x = input1[:, :, :-1, :] - input2[:, :, 1:, :]
    pw_y = input1[:, :, :, :-1] - input2[:, :, :, 1:]
    pw_x = pw_x[:, :, k - 1::k, :]
    pw_y = pw_y[:, :, :, k - 1::k]
    pw_x = avg_pool2d(np.abs(pw_x).mean(1), 1, k)
    pw_y = avg_pool2d(np.abs(pw_y).mean(1), k, 1)
    return pw_x, pw_y


def graph_terms(input01, grad1, indices, block_num, beta, gamma, neigh_size):
    """`mixup_graph` up to the graph cut: (unary1, unary2, pw_x, pw_y, beta,
    unary1_torch); input01 (B, C, H, W) in [0, 1], grad1 (B, H, W)."""
    batch_size, _, _, width = input01.shape
    block_size = width // block_num
    neigh_size = min(neigh_size, block_size)
    beta = beta / block_num / 16
    grad1_pool = avg_pool2d(grad1, block_size)
    unary1_torch = grad1_pool / grad1_pool.reshape(batch_size, -1).sum(1).reshape(
        batch_size, 1, 1)
    unary2_torch = unary1_torch[indices]
    input1_pool = avg_pool2d(input01, neigh_size)
    input2_pool = input1_pool[indices]
    pw_x = np.zeros([batch_size, 2, 2, block_num - 1, block_num], np.float32)
    pw_y = np.zeros([batch_size, 2, 2, block_num, block_num - 1], np.float32)
    k = block_size // neigh_size
    pw_x[:, 0, 0], pw_y[:, 0, 0] = neigh_penalty(input2_pool, input2_pool, k)
    pw_x[:, 0, 1], pw_y[:, 0, 1] = neigh_penalty(input2_pool, input1_pool, k)
    pw_x[:, 1, 0], pw_y[:, 1, 0] = neigh_penalty(input1_pool, input2_pool, k)
    pw_x[:, 1, 1], pw_y[:, 1, 1] = neigh_penalty(input1_pool, input1_pool, k)
    pw_x = beta * gamma * pw_x
    pw_y = beta * gamma * pw_y
    unary1 = unary1_torch.copy()
    unary2 = unary2_torch.copy()
    unary2[:, :-1, :] += (pw_x[:, 1, 0] + pw_x[:, 1, 1]) / 2.
    unary1[:, :-1, :] += (pw_x[:, 0, 1] + pw_x[:, 0, 0]) / 2.
    unary2[:, 1:, :] += (pw_x[:, 0, 1] + pw_x[:, 1, 1]) / 2.
    unary1[:, 1:, :] += (pw_x[:, 1, 0] + pw_x[:, 0, 0]) / 2.
    unary2[:, :, :-1] += (pw_y[:, 1, 0] + pw_y[:, 1, 1]) / 2.
    unary1[:, :, :-1] += (pw_y[:, 0, 1] + pw_y[:, 0, 0]) / 2.
    unary2[:, :, 1:] += (pw_y[:, 0, 1] + pw_y[:, 1, 1]) / 2.
    unary1[:, :, 1:] += (pw_y[:, 1, 0] + pw_y[:, 0, 0]) / 2.
    pw_x = (pw_x[:, 1, 0] + pw_x[:, 0, 1] - pw_x[:, 1, 1] - pw_x[:, 0, 0]) / 2
    pw_y = (pw_y[:, 1, 0] + pw_y[:, 0, 1] - pw_y[:, 1, 1] - pw_y[:, 0, 0]) / 2
    return unary1, unary2, pw_x, pw_y, beta, unary1_torch


def graphcut_inputs(unary1, unary2, pw_x, pw_y, alpha, beta, eta, n_labels=2, eps=1e-8):
    """`graphcut_multi` up to the gco call (called, as there, with the
    partner's unary first): the int32 unary, pairwise table and edges."""
    block_num = unary1.shape[0]
    large_val = 1000 * block_num ** 2
    if n_labels == 2:
        prior = np.array([-np.log(alpha + eps), -np.log(1 - alpha + eps)])
    elif n_labels == 3:
        prior = np.array([-np.log(alpha ** 2 + eps), -np.log(2 * alpha * (1 - alpha) + eps),
                          -np.log((1 - alpha) ** 2 + eps)])
    elif n_labels == 4:
        prior = np.array([-np.log(alpha ** 3 + eps), -np.log(3 * alpha ** 2 * (1 - alpha) + eps),
                          -np.log(3 * alpha * (1 - alpha) ** 2 + eps),
                          -np.log((1 - alpha) ** 3 + eps)])
    prior = eta * prior / block_num ** 2
    float_cost = np.stack([(1 - lam) * unary1 + lam * unary2 + prior[i]
                           for i, lam in enumerate(np.linspace(0, 1, n_labels))], axis=-1)
    unary_cost = (large_val * float_cost).astype(np.int32)
    pairwise_cost = np.zeros(shape=[n_labels, n_labels], dtype=np.float32)
    for i in range(n_labels):
        for j in range(n_labels):
            pairwise_cost[i, j] = (i - j) ** 2 / (n_labels - 1) ** 2
    pw_x = (large_val * (pw_x + beta)).astype(np.int32)
    pw_y = (large_val * (pw_y + beta)).astype(np.int32)
    return float_cost, unary_cost, pairwise_cost, pw_x, pw_y


def graphcut_multi(unary1, unary2, pw_x, pw_y, alpha, beta, eta, n_labels=2):
    import gco

    _, unary_cost, pairwise_cost, pw_x, pw_y = graphcut_inputs(
        unary1, unary2, pw_x, pw_y, alpha, beta, eta, n_labels)
    labels = 1.0 - gco.cut_grid_graph(unary_cost, pairwise_cost, pw_x, pw_y,
                                      algorithm="swap") / (n_labels - 1)
    return labels.reshape(unary1.shape[0], unary1.shape[0])


def energy_loops(float_cost, pw_x, pw_y, beta, labels):
    """The grid energy of integer labels by explicit loops over the cells and
    the edges (float costs, no integer scaling)."""
    n, _, k = float_cost.shape
    e = 0.0
    for i in range(n):
        for j in range(n):
            e += float_cost[i, j, labels[i, j]]
            if i + 1 < n:
                e += (pw_x[i, j] + beta) * (labels[i, j] - labels[i + 1, j]) ** 2 / (k - 1) ** 2
            if j + 1 < n:
                e += (pw_y[i, j] + beta) * (labels[i, j] - labels[i, j + 1]) ** 2 / (k - 1) ** 2
    return e


def mask_transport(mask, grad_pool, eps=0.01):
    batch_size = mask.shape[0]
    block_num = mask.shape[-1]
    n_iter = int(block_num)
    c = cost_matrix(block_num)[None]
    z = (mask > 0).astype(np.float32)
    cost = eps * c - grad_pool.reshape(-1, block_num ** 2, 1) * z.reshape(-1, 1, block_num ** 2)
    for _ in range(n_iter):
        row_best = cost.argmin(-1)
        plan = np.zeros_like(cost)
        np.put_along_axis(plan, row_best[..., None], 1, axis=-1)
        cost_fight = plan * cost
        col_best = cost_fight.argmin(-2)
        plan_win = np.zeros_like(cost)
        np.put_along_axis(plan_win, col_best[:, None, :], 1, axis=-2)
        plan_win = plan_win * plan
        plan_lose = (1 - plan_win) * plan
        cost += plan_lose
    assert batch_size == plan_win.shape[0]
    return plan_win


def transport_image(img, plan, batch_size, block_num, block_size):
    c = img.shape[1]
    patch = img.reshape([batch_size, c, block_num, block_size,
                         block_num * block_size]).swapaxes(-2, -1)
    patch = patch.reshape([batch_size, c, block_num, block_num, block_size,
                           block_size]).swapaxes(-2, -1)
    patch = patch.reshape([batch_size, c, block_num ** 2, block_size,
                           block_size]).transpose(0, 1, 3, 4, 2)[..., None]
    moved = (plan.swapaxes(-2, -1)[:, None, None, None] @ patch)[..., 0].transpose(0, 1, 4, 2, 3)
    moved = moved.reshape([batch_size, c, block_num, block_num, block_size, block_size])
    moved = moved.swapaxes(-2, -1).reshape([batch_size, c, block_num, block_num * block_size,
                                            block_size])
    return moved.swapaxes(-2, -1).reshape([batch_size, c, block_num * block_size,
                                           block_num * block_size])


def mix_after_labels(input1, input01, grad1, indices, mask, block_num, t_eps=0.8, t_size=4,
                     transport=True):
    """The rest of `mixup_graph` from the solved (B, n, n) mask: transport
    and the final mix; returns (mixed, mask (B, 1, W, W), ratio)."""
    input2 = input1[indices]
    batch_size, _, _, width = input1.shape
    block_size = width // block_num
    t_size = min(t_size, block_size)
    mask = mask[:, None].astype(np.float32)
    del input01
    if transport:
        if t_size == -1:
            t_block_num, t_size = block_num, block_size
            grad1_pool = avg_pool2d(grad1, block_size)
        elif t_size < block_size:
            t_block_num = width // t_size
            mask = interpolate_nearest(mask, t_block_num)
            grad1_pool = avg_pool2d(grad1, t_size)
        else:
            t_block_num = block_num
            grad1_pool = avg_pool2d(grad1, block_size)
        unary1 = grad1_pool / grad1_pool.reshape(batch_size, -1).sum(1).reshape(batch_size, 1, 1)
        unary2 = unary1[indices]
        plan = mask_transport(mask, unary1, eps=t_eps)
        input1 = transport_image(input1, plan, batch_size, t_block_num, t_size)
        plan = mask_transport(1 - mask, unary2, eps=t_eps)
        input2 = transport_image(input2, plan, batch_size, t_block_num, t_size)
    mask = interpolate_nearest(mask, width)
    ratio = mask.reshape(batch_size, -1).mean(-1)
    return mask * input1 + (1 - mask) * input2, mask, ratio
