"""The synthetic benchmark's design is frozen: its files are byte-identical to those of the original
single-module generator (checksums recorded from it before it was split into a package)."""

import hashlib

from globallocal.data.synthetic import SPLITS, SyntheticConfig, generate_benchmark, generate_example
from support.configs import synthetic_config

SMALL = synthetic_config(seed=3, num_source=3, num_target_train=3, num_target_val=2,
                        source_size=(96, 53), target_size=(96, 48))
#: sha256 of every file written for SMALL by the original data/synthetic.py (commit f7420f9).
SMALL_TREE_SHA256 = {
    "cityscapes/gtFine/train/altbrunn/altbrunn_000000_000019_gtFine_labelIds.png": "4f4442ae174fac8b778075da8d9aea0c9ede0dd0a02ae36093657fe849df83d5",
    "cityscapes/gtFine/train/bergheide/bergheide_000000_000019_gtFine_labelIds.png": "eba6f0b30fff63a50164dc485a112f1e6b3213f62111c8f5b8c79d69e5511a0b",
    "cityscapes/gtFine/train/kesselfurt/kesselfurt_000000_000019_gtFine_labelIds.png": "957be7524397b18928bfb01fb965a77305a2cce3baa45ce3741706f93150e962",
    "cityscapes/gtFine/val/lindmoor/lindmoor_000000_000019_gtFine_labelIds.png": "389b221282ed82104f457dd54a12f8d184c6303cb06070e5637207e89779472c",
    "cityscapes/gtFine/val/ostergrau/ostergrau_000000_000019_gtFine_labelIds.png": "2b4a1c2fb94e3c97a06a27bdf9afd3a176e14a936cf5b765671e7ec838571a8c",
    "cityscapes/leftImg8bit/train/altbrunn/altbrunn_000000_000019_leftImg8bit.png": "7e02555a369039354c0418dc462d7fba91b1453d5a72c91b870e5ebb0597f426",
    "cityscapes/leftImg8bit/train/bergheide/bergheide_000000_000019_leftImg8bit.png": "eafcfd5d5499706405ec0dc2f97235c0f2961f529c76d48dd673cffb3e18ad55",
    "cityscapes/leftImg8bit/train/kesselfurt/kesselfurt_000000_000019_leftImg8bit.png": "a7bd25483c3f25c46bcff6632d4a2357bd953e063f292b6d7ea961250a0efdda",
    "cityscapes/leftImg8bit/val/lindmoor/lindmoor_000000_000019_leftImg8bit.png": "6228e9e6359e4a8dfa6d40e3ac3fd70987b78df6c236a96e627fdf1e90efec7f",
    "cityscapes/leftImg8bit/val/ostergrau/ostergrau_000000_000019_leftImg8bit.png": "5382036db361e9caf5457e79d96fb2112353697b5cd9be9bacf51624d3ed4fef",
    "gta5/images/00001.png": "246827f58ce51c6fc6b288adce25ef0bf0fd2b2193e6177d43f1ddc5b7e49e5d",
    "gta5/images/00002.png": "5b5ef24825b96515bd41960498859b01db5c659f706f2ca0530c7a8afadb891a",
    "gta5/images/00003.png": "75ed42cba7a7fa38e0bf2bf71304bd14e19e672cef07052ad1ba8dda4a0b6473",
    "gta5/labels/00001.png": "70634df35e6f1aeea1fd9ebf7a2f78c329597aa0a0d231e81df036ec8704dd83",
    "gta5/labels/00002.png": "202b51f0c4d9a5d407693f0fbaebb432cb827c5fe51221267acb3b68c236cd37",
    "gta5/labels/00003.png": "50dd6248d92c5aa991ec444a39f094d3cecc89f2c509983cb44c9b7619059893",
    "synthetic_benchmark.json": "d9ec9caf0e802bc4bc82a44373030468ebb750859b439185b9259f3a46d479ac",
}
#: sha256 of (RGB bytes, labelId bytes) of example 7 of each split at the default sizes, same origin.
DEFAULT_EXAMPLE_7_SHA256 = {
    "source": ("d97f4d753d00ad492bb936f14bac858f530a7e8aea7f1218a91e984fa479c9c0", "4933418aaa666c35c6893875bdfacac4dca89f8c23fe099c816d1b71e6bd5e5e"),
    "target_train": ("e038df76d88a3c98fc5da0f4f780ac9c4a9137630d271da553f2a5a0d55eef21", "ae20dce0a106c1f3dec98d1a1fa3989cc306cc7c1240d713ee8f1f263886be61"),
    "target_val": ("cfb90639a3f9d5ccb53b4c1089eaa900549914bb68a72eab71ddacf7cef32ad0", "175fb7c9a8067d28ea4d8ae4cdd92e74080934f126839f33117f7bbe7579c850"),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_generated_tree_is_byte_identical_to_the_original_generator(tmp_path):
    generate_benchmark(tmp_path, SMALL)
    written = {
        path.relative_to(tmp_path).as_posix(): sha256(path.read_bytes())
        for path in sorted(tmp_path.rglob("*")) if path.is_file()
    }
    assert written == SMALL_TREE_SHA256


def test_default_size_examples_are_identical_to_the_original_generator():
    config = synthetic_config()
    for split in SPLITS:
        rgb, label_ids = generate_example(config, split, 7)
        assert (sha256(rgb.tobytes()), sha256(label_ids.tobytes())) == DEFAULT_EXAMPLE_7_SHA256[split], split
