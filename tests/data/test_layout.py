"""Folder layout, split lists and splits (pure Python)."""

import os
import shutil

import pytest

from tfseg.data import OxfordPetFolder
from tfseg.data.layout import BREEDS
from tfseg.data.layout import breed_of


def names(records):
    return {r.name for r in records}


def test_official_lists_give_disjoint_stratified_splits(synthetic_root):
    splits, problems = OxfordPetFolder(synthetic_root).splits(val_fraction=0.25, seed=0)
    assert not any(problems.values())
    train, val, test = (names(splits[s]) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    with open(synthetic_root / "annotations" / "trainval.txt") as file:
        listed = {line.split()[0] for line in file}
    assert train | val == listed
    # Every breed with two or more trainval images has one in validation.
    val_breeds = {r.breed_id for r in splits["val"]}
    assert val_breeds == {r.breed_id for r in splits["train"]}
    assert {r.species for r in splits["train"]} == {0, 1}


def test_splits_are_seeded(synthetic_root):
    folder = OxfordPetFolder(synthetic_root)
    first = names(folder.splits(val_fraction=0.3, seed=1)[0]["val"])
    assert first == names(folder.splits(val_fraction=0.3, seed=1)[0]["val"])
    assert first != names(folder.splits(val_fraction=0.3, seed=2)[0]["val"])


def copy_without(root, tmp_path, *lists):
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    for name in lists:
        os.remove(copy / "annotations" / name)
    return OxfordPetFolder(copy)


def test_only_a_test_list_means_the_rest_is_trainval(synthetic_root, tmp_path):
    folder = copy_without(synthetic_root, tmp_path, "trainval.txt")
    splits, _ = folder.splits(val_fraction=0.2)
    test = names(splits["test"])
    assert (
        names(splits["train"]) | names(splits["val"])
        == set(folder.paired_names()) - test
    )
    # Breeds come from the names when there is no list.
    assert all(r.breed_id >= 0 and r.species >= 0 for r in splits["train"])


def test_no_lists_means_a_seeded_split_of_all_pairs(synthetic_root, tmp_path):
    folder = copy_without(synthetic_root, tmp_path, "trainval.txt", "test.txt")
    splits, _ = folder.splits(val_fraction=0.2, test_fraction=0.5, seed=0)
    everything = set(folder.paired_names())
    parts = [names(splits[s]) for s in ("train", "val", "test")]
    assert set().union(*parts) == everything
    assert sum(map(len, parts)) == len(everything) == 24
    assert 8 <= len(parts[2]) <= 16


def test_breed_of_knows_the_37_breeds():
    assert len(BREEDS) == 37
    assert breed_of("Abyssinian_12") == (0, 0)  # cat
    assert breed_of("american_pit_bull_terrier_3") == (2, 1)  # dog
    assert breed_of("yorkshire_terrier_190") == (36, 1)
    assert breed_of("unicorn_1") == (-1, -1)


def test_a_folder_that_is_not_a_dataset_says_what_it_expects(tmp_path):
    with pytest.raises(ValueError, match="is not an Oxford-IIIT Pet folder.*images"):
        OxfordPetFolder(tmp_path)


def test_malformed_list_line_names_file_and_line(synthetic_root, tmp_path):
    folder = copy_without(synthetic_root, tmp_path)
    with open(folder.root + "/annotations/test.txt", "a") as file:
        file.write("Bengal_99 99 1 1\n")
    with pytest.raises(
        ValueError, match=r"test.txt, line \d+: expected 'NAME CLASS_ID"
    ):
        folder.splits()


def test_hidden_macos_files_are_ignored(synthetic_root, tmp_path):
    folder = copy_without(synthetic_root, tmp_path)
    (tmp_path / "copy" / "annotations" / "trimaps" / "._Bengal_3.png").write_bytes(b"x")
    assert "._Bengal_3" not in folder.paired_names()
