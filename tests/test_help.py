"""`--help`: src.train's groups with the options that are files in conf/, nothing else (no
schemas); src.eval's, src.predict's, src.serve's and src.export's own settings; then examples
and where to read more."""

from src.core.config import CONF_DIR
from tests.conftest import run_here


def groups_listed(help_text: str) -> dict[str, list[str]]:
    """The `group: a, b, c` lines of the help's groups section."""
    section = help_text.split("== Groups")[1].split("\n==")[0]
    lines = [line for line in section.splitlines()[1:] if line.strip()]
    return {group: options.split(", ") for group, options in (line.split(": ") for line in lines)}


def test_help_lists_each_group_with_its_option_files_only():
    result = run_here("src.train", "--help")

    assert result.returncode == 0, result.stderr[-3000:]
    groups = groups_listed(result.stdout)
    folders = [p for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra"]
    assert sorted(groups) == sorted(p.name for p in folders)
    for folder in folders:
        assert groups[folder.name] == sorted(p.stem for p in folder.glob("*.yaml")), folder.name
    assert "resnet_small" in groups["model"] and "convnet16" in groups["model"]
    assert "schema" not in result.stdout
    assert "python -m src.train -m model=convnet16,convnet32 seed=1,2,3" in result.stdout
    assert "README.md" in result.stdout


def test_the_commands_of_a_checkpoint_list_their_own_settings_and_none_of_trainings_groups():
    for command, settings in (
        ("eval", ["ckpt_path", "data", "misclassified"]),
        ("predict", ["ckpt_path", "inputs", "preprocess", "json"]),
        ("serve", ["ckpt_path", "port", "max_megapixels", "measure_page"]),
        ("export", ["ckpt_path", "data", "check_images", "bench"]),
    ):
        result = run_here(f"src.{command}", "--help")
        assert result.returncode == 0, result.stderr[-3000:]
        section = result.stdout.split("== Settings: key=value ==")[1].split("\n==")[0]
        top_level = [line.split(":")[0] for line in section.splitlines() if line[:1].isalpha()]
        assert top_level == settings
        assert "model:" not in result.stdout and "optimizer" not in result.stdout
        assert f"python -m src.{command} ckpt_path=outputs/runs/<date>/<time>" in result.stdout
