"""Global families, the local module and the GAN losses, specified on tiny hand-made cases."""

import math

import pytest
import torch

from globallocal.alignment.discriminators import GlobalDiscriminator, LocalDiscriminator
from globallocal.alignment.gan_losses import gan_loss
from globallocal.alignment.global_alignment import GlobalAlignment
from globallocal.alignment.local import (
    DROPPED,
    LocalAlignment,
    class_balanced_mean,
    source_categories,
    target_categories,
)
from globallocal.alignment.representations import mean_entropy, represent, self_information
from support.configs import alignment_config, local_config

K = 4


def one_position(prob):
    """A (1, K, 1, 1) probability map from a list."""
    return torch.tensor(prob, dtype=torch.float32).view(1, -1, 1, 1)


def test_self_information_of_two_equal_classes_out_of_four():
    info = self_information(one_position([0.5, 0.5, 0.0, 0.0])).flatten()
    # -0.5 * log2(0.5) / log2(4) = 0.25 for the two live classes, 0 for the others.
    assert torch.allclose(info, torch.tensor([0.25, 0.25, 0.0, 0.0]))


def test_self_information_sums_to_one_for_uniform_and_zero_for_one_hot():
    assert self_information(one_position([0.25] * 4)).sum().item() == pytest.approx(1.0)
    assert self_information(one_position([1.0, 0, 0, 0])).sum().item() == pytest.approx(0.0)


def test_mean_entropy_averages_positions():
    prob = torch.cat([one_position([0.25] * 4), one_position([1.0, 0, 0, 0])], dim=3)
    assert mean_entropy(prob).item() == pytest.approx(0.5)


def test_represent_softmax_matches_torch_softmax():
    logits = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, K, 1, 1)
    assert torch.allclose(represent(logits, "softmax"), torch.softmax(logits, dim=1))


def test_vanilla_gan_loss_of_zero_logit_is_log_two():
    assert gan_loss(torch.zeros(3), 1.0, "vanilla").item() == pytest.approx(math.log(2))


def test_lsgan_loss_is_squared_distance_to_label():
    assert gan_loss(torch.tensor([0.5, 1.5]), 1.0, "lsgan").item() == pytest.approx(0.25)


def test_global_discriminator_downsamples_by_32():
    out = GlobalDiscriminator(K)(torch.zeros(2, K, 64, 128))
    assert out.shape == (2, 1, 2, 4)


def test_pooled_global_discriminator_sees_the_cell_means_of_the_map():
    # d_pool 2 on a 64x96 self-information map: D_g receives the 32x48 means of its 2x2 cells.
    torch.manual_seed(0)
    term = GlobalAlignment("advent", K, d_pool=2)
    seen = []
    term.discriminator.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    logits = torch.randn(1, K, 64, 96)
    term.generator_loss(logits)
    expected = self_information(logits.softmax(dim=1)).view(1, K, 32, 2, 48, 2).mean(dim=(3, 5))
    assert seen[0].shape == (1, K, 32, 48)
    assert torch.allclose(seen[0], expected, atol=1e-6)


def test_pooled_global_discriminator_averages_only_the_pixels_of_edge_cells():
    # 65 columns pooled by 2: the last cells hold one column each, so they are the mean of 2 rows only.
    term = GlobalAlignment("adaptsegnet", K, d_pool=2)
    seen = []
    term.discriminator.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    logits = torch.randn(1, K, 64, 65)
    term.generator_loss(logits)
    last_column = logits.softmax(dim=1)[..., 64].view(1, K, 32, 2).mean(dim=-1)
    assert seen[0].shape == (1, K, 32, 33)
    assert torch.allclose(seen[0][..., 32], last_column, atol=1e-6)


def test_unpooled_global_discriminator_sees_the_whole_map():
    term = GlobalAlignment("adaptsegnet", K)
    seen = []
    term.discriminator.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    logits = torch.randn(2, K, 64, 64)
    term.generator_loss(logits)
    assert torch.equal(seen[0], logits.softmax(dim=1))


def test_local_discriminator_keeps_resolution_and_gives_one_logit_per_class():
    out = LocalDiscriminator(K)(torch.zeros(2, K, 5, 7))
    assert out.shape == (2, K, 5, 7)


def test_source_categories_drop_ignore_and_background_pixels():
    labels = torch.tensor([[[0, 1, 255], [2, 3, 1]]])
    cats = source_categories(labels, K, background_classes=(1,))
    assert cats.tolist() == [[[0, DROPPED, DROPPED], [2, 3, DROPPED]]]


def test_source_categories_take_cell_majority_and_drop_impure_cells():
    labels = torch.tensor(
        [[[2, 2, 0, 1],
          [2, 0, 3, 255],
          [255, 255, 1, 1],
          [255, 1, 1, 1]]]
    )
    # cells: top-left 3/4 class 2 -> 2; top-right four different values -> share 1/4 < 0.5 -> dropped;
    # bottom-left majority is ignore (3/4) -> dropped; bottom-right all 1 -> 1.
    cats = source_categories(labels, K, window=2, min_purity=0.5)
    assert cats.tolist() == [[[2, DROPPED], [DROPPED, 1]]]


def test_target_categories_keep_only_confident_argmax():
    prob = torch.cat([one_position([0.95, 0.05, 0, 0]), one_position([0.6, 0.4, 0, 0])], dim=3)
    assert target_categories(prob, conf_threshold=0.9).tolist() == [[[0, DROPPED]]]


def test_class_balanced_mean_weights_each_present_class_equally():
    values = torch.tensor([1.0, 1.0, 1.0, 4.0])
    cats = torch.tensor([0, 0, 0, 2])
    # class 0 mean 1, class 2 mean 4 -> (1 + 4) / 2, not the pixel mean 7 / 4.
    assert class_balanced_mean(values, cats, K).item() == pytest.approx(2.5)


def test_class_balanced_mean_of_nothing_is_zero_and_backpropagates():
    values = torch.zeros(0, requires_grad=True)
    loss = class_balanced_mean(values, torch.zeros(0, dtype=torch.long), K)
    loss.backward()
    assert loss.item() == 0.0


def _local(window=1, **kwargs):
    torch.manual_seed(0)
    return LocalAlignment(K, local_config(representation="softmax", window=window, **kwargs))


def test_ignore_pixels_never_reach_the_local_discriminator_loss():
    local = _local()
    torch.manual_seed(1)
    source = torch.randn(1, K, 2, 3)
    target = torch.randn(1, K, 2, 3) * 10
    labels = torch.tensor([[[0, 1, 255], [2, 255, 3]]])
    loss, _ = local.discriminator_loss(source, labels, target)
    changed = source.clone()
    changed[0, :, 0, 2] = torch.tensor([50.0, -50.0, 0.0, 0.0])  # only ignore pixels change
    changed[0, :, 1, 1] = torch.tensor([-9.0, 9.0, 3.0, 0.0])
    loss_changed, _ = local.discriminator_loss(changed, labels, target)
    assert loss_changed.item() == pytest.approx(loss.item())
    changed[0, :, 0, 0] = torch.tensor([-9.0, 9.0, 3.0, 0.0])  # a labelled pixel does count
    assert local.discriminator_loss(changed, labels, target)[0].item() != pytest.approx(loss.item())


def test_low_confidence_target_pixels_get_no_local_gradient():
    local = _local(conf_threshold=0.9)
    logits = torch.zeros(1, K, 1, 2)
    logits[0, 0, 0, 0] = 10.0  # confident class 0
    logits[0, 1, 0, 1] = 0.5  # max prob ~0.35: below threshold
    logits.requires_grad_(True)
    local.generator_loss(logits).backward()
    assert logits.grad[0, :, 0, 0].abs().sum() > 0
    assert torch.all(logits.grad[0, :, 0, 1] == 0)


def test_local_loss_uses_the_logit_of_the_outputs_own_category():
    local = _local()
    with torch.no_grad():  # D_l says "target" (logit +5) for class 0 and "source" (-5) for the rest
        for layer in local.discriminator.net:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.zero_()
                layer.bias.zero_()
        local.discriminator.net[-1].bias.copy_(torch.tensor([5.0, -5.0, -5.0, -5.0]))
    logits = torch.full((1, K, 1, 1), -20.0)
    logits[0, 0] = 20.0  # confidently class 0
    # G wants "source" (0) for the class-0 logit +5: BCE = log(1 + e^5).
    assert local.generator_loss(logits).item() == pytest.approx(math.log1p(math.exp(5.0)), rel=1e-5)
    logits[0, 0], logits[0, 1] = -20.0, 20.0  # now class 1, logit -5
    assert local.generator_loss(logits).item() == pytest.approx(math.log1p(math.exp(-5.0)), rel=1e-5)


def _generator_step_lowers(term_loss, logits, lr=1.0):
    logits = logits.clone().requires_grad_(True)
    before = term_loss(logits)
    before.backward()
    with torch.no_grad():
        stepped = logits - lr * logits.grad / logits.grad.norm()
    return before.item(), term_loss(stepped).item()


@pytest.mark.parametrize("family", ["advent", "adaptsegnet"])
def test_generator_step_lowers_global_adversarial_loss(family):
    torch.manual_seed(0)
    term = GlobalAlignment(family, K)
    before, after = _generator_step_lowers(term.generator_loss, torch.randn(1, K, 64, 64))
    assert after < before


def test_generator_step_lowers_local_adversarial_loss():
    local = _local(conf_threshold=0.0)
    torch.manual_seed(2)
    before, after = _generator_step_lowers(local.generator_loss, torch.randn(1, K, 8, 8) * 3)
    assert after < before


def test_discriminator_step_lowers_its_global_loss():
    torch.manual_seed(0)
    term = GlobalAlignment("advent", K)
    source, target = torch.randn(2, K, 64, 64), torch.randn(2, K, 64, 64) * 4
    optimizer = torch.optim.SGD(term.parameters(), lr=1e-2)
    before, _ = term.discriminator_loss(source, target)
    before.backward()
    optimizer.step()
    after, _ = term.discriminator_loss(source, target)
    assert after.item() < before.item()


def test_minent_generator_loss_is_mean_target_entropy_and_has_no_discriminator():
    term = GlobalAlignment("minent", K)
    logits = torch.zeros(1, K, 2, 2)  # uniform softmax: entropy 1
    assert not term.has_discriminator
    assert term.generator_loss(logits).item() == pytest.approx(1.0)


def test_none_family_contributes_nothing():
    assert GlobalAlignment("none", K).generator_loss(torch.randn(1, K, 2, 2)).item() == 0.0


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="advent"):
        GlobalAlignment("cycada", K)


def _class_balanced_mean_with_masks(values, categories, num_classes):
    """The local loss as it was written with boolean masks and bincount (several host reads on CUDA)."""
    if values.numel() == 0:
        return values.sum()
    sums = values.new_zeros(num_classes).index_add(0, categories, values)
    counts = torch.bincount(categories, minlength=num_classes)
    present = counts > 0
    return (sums[present] / counts[present]).mean()


@pytest.mark.parametrize("seed", range(5))
def test_the_local_losses_and_gradients_are_bit_identical_to_the_masked_formulation(seed):
    from globallocal.alignment.local import _category_logits

    generator = torch.Generator().manual_seed(seed)
    d_out = torch.randn(2, 19, 6, 7, generator=generator, requires_grad=True)
    categories = torch.randint(-1, 19, (2, 6, 7), generator=generator)
    categories[0, :3] = DROPPED  # whole rows and classes missing
    losses, grads = [], []
    for new in (True, False):
        d_out.grad = None
        if new:
            picked, kept = _category_logits(d_out, categories)
            loss = class_balanced_mean(gan_loss(picked, 1.0, "vanilla", reduction="none"), kept, 19)
        else:
            keep = categories != DROPPED
            picked = d_out.gather(1, categories.clamp(min=0).unsqueeze(1)).squeeze(1)[keep]
            loss = _class_balanced_mean_with_masks(
                gan_loss(picked, 1.0, "vanilla", reduction="none"), categories[keep], 19)
        loss.backward()
        losses.append(loss.detach())
        grads.append(d_out.grad.clone())
    assert torch.equal(losses[0], losses[1]) and torch.equal(grads[0], grads[1])
    assert grads[0][0, :, :3].abs().sum() == 0  # dropped positions get no gradient


def test_the_global_weight_warm_up_ramps_the_term_linearly_then_holds_it():
    from globallocal.alignment.aligners import Aligners
    from globallocal.alignment.representations import HeadOutputs
    from support.configs import alignment_config

    torch.manual_seed(0)
    logits = torch.randn(1, K, 8, 8)
    config = alignment_config(global_family="minent", lambda_ent_main=0.5, lambda_adv_local=0.0, global_warmup_iters=4)
    aligners = Aligners(config, K, ("main",))
    entropy = mean_entropy(torch.softmax(logits, dim=1))
    for iteration, share in ((0, 0.25), (1, 0.5), (3, 1.0), (40, 1.0)):
        terms, stats = aligners.generator_terms({"main": HeadOutputs(logits)}, iteration)
        assert torch.allclose(terms["global_main"], 0.5 * share * entropy)
        assert torch.equal(stats["loss_adv/global_main"], entropy)  # logged before its weight
    no_warm_up = Aligners(alignment_config(global_family="minent", lambda_ent_main=0.5, lambda_adv_local=0.0),
                          K, ("main",))
    terms, _ = no_warm_up.generator_terms({"main": HeadOutputs(logits)}, 0)
    assert torch.equal(terms["global_main"], 0.5 * entropy)  # 0: the full weight from the first step, bit for bit


def test_the_families_table_drives_weights_discriminators_and_representations():
    from globallocal.alignment.global_alignment import ALIGNING_FAMILIES, FAMILIES, family_representation

    assert ALIGNING_FAMILIES == ("adaptsegnet", "advent", "minent")
    weights = dict(lambda_adv_main=0.3, lambda_adv_aux=0.2, lambda_ent_main=0.7, lambda_ent_aux=0.6)
    assert alignment_config(global_family="advent", **weights).global_weight("aux") == 0.2
    assert alignment_config(global_family="minent", **weights).global_weight("main") == 0.7
    assert alignment_config(global_family="none", **weights).global_weight("main") == 0.0
    assert [name for name, family in FAMILIES.items() if family.has_discriminator] == ["adaptsegnet", "advent"]
    assert GlobalAlignment("minent", 4).discriminator is None
    assert GlobalAlignment("adaptsegnet", 4).discriminator is not None
    assert family_representation("adaptsegnet") == "softmax"
    assert family_representation("minent") == "self_information"
