"""The fine-tuning recipe (optimizer, schedule, warm-up, augmentation) is part of the settings
stored in run.json, and bad values are refused naming their keyword."""

import pytest

from autocompress.compressors.distill import DistillConfig
from autocompress.search.settings import SearchSettings, SettingError, distill_config, flag_for


def test_the_fine_tuning_recipe_is_stored_and_restored():
    settings = SearchSettings(distill=DistillConfig(optimizer="sgd", weight_decay=5e-4, schedule="constant",
                                                    warmup_fraction=0.1, augment=False))
    stored = settings.to_dict()["distill"]
    assert {k: stored[k] for k in ("optimizer", "weight_decay", "schedule", "warmup_fraction", "augment")} == \
        {"optimizer": "sgd", "weight_decay": 5e-4, "schedule": "constant", "warmup_fraction": 0.1, "augment": False}
    assert SearchSettings.from_dict(settings.to_dict()) == settings
    assert settings.differences(SearchSettings()) == {
        "distill.optimizer": ("sgd", "adamw"), "distill.weight_decay": (5e-4, 1e-4),
        "distill.schedule": ("constant", "cosine"), "distill.warmup_fraction": (0.1, 0.05),
        "distill.augment": (False, True)}


@pytest.mark.parametrize("values, keyword", [({"optimizer": "adam"}, "distill.optimizer"),
                                             ({"schedule": "step"}, "distill.schedule"),
                                             ({"warmup_fraction": 1.0}, "distill.warmup_fraction"),
                                             ({"weight_decay": -1e-4}, "distill.weight_decay"),
                                             ({"augment": "yes"}, "distill.augment"),
                                             ({"float_fraction": 1.0}, "distill.float_fraction"),
                                             ({"float_fraction": -0.1}, "distill.float_fraction")])
def test_bad_fine_tuning_settings_name_their_keyword(values, keyword):
    with pytest.raises(SettingError) as error:
        distill_config(values)
    assert error.value.name == keyword


def test_the_cli_flags_of_the_new_settings():
    assert [flag_for(k) for k in ("distill.optimizer", "distill.warmup_fraction", "distill.augment",
                                  "distill.float_fraction")] == ["--optimizer", "--warmup", "--no-augment",
                                                                 "--float-fraction"]


def test_float_fraction_is_stored_and_a_run_stored_before_it_fine_tuned_quantization_aware_throughout():
    settings = SearchSettings(distill=DistillConfig(float_fraction=0.7))
    assert SearchSettings.from_dict(settings.to_dict()) == settings
    before = settings.to_dict()
    del before["distill"]["float_fraction"]
    assert SearchSettings.from_dict(before).distill.float_fraction == 0.0


def test_the_guide_of_local_search_is_a_setting_on_by_default_and_off_for_runs_stored_before_it():
    assert SearchSettings().guide is True and flag_for("guide") == "--no-guide"
    off = SearchSettings(guide=False)
    assert SearchSettings.from_dict(off.to_dict()) == off
    stored_before = {k: v for k, v in SearchSettings().to_dict().items() if k != "guide"}
    assert SearchSettings.from_dict(stored_before).guide is False
    with pytest.raises(SettingError) as error:
        SearchSettings(guide="yes")
    assert error.value.name == "guide"
