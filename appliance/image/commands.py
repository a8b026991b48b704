"""`appliance image build enroll`: what the command prints and its exit status.

The build itself is `enroll.build()`; this module picks the directories from the config
(`[http].root`/enroll for the image, `[node].state_dir`/cache/image for packages) and
turns the outcome into lines for a person. `node` builds the flashable node image
(`node.build()`) into DIR (default [http].root/node), its cache beside the packages'.
"""

import sys
from pathlib import Path

from appliance.config import Config
from appliance.image import enroll, node, outputs, recipe
from appliance.image.debian import PackageError
from appliance.image.disk import DiskError
from appliance.image.recipe import RecipeError

EXIT_FAILURE = 1


def build(cfg: Config, name: str, output: str | None, force: bool, formats: str = "raw,qcow2,box") -> int:
    """Build image `name` ("enroll" or "node"); 0 when built or up to date, 1 on failure."""
    target = Path(output) if output else Path(cfg.http.root) / name
    if name == "node":
        return build_node(cfg, target, force, formats)
    try:
        result = enroll.build(recipe.load(), target, enroll.default_cache(cfg.node.state_dir), force)
    except (RecipeError, PackageError, OSError) as exc:
        print(f"appliance: cannot build the {name} image: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    info = result.info
    if not result.built:
        print(f"{name} image in {target} is up to date (recipe {info['recipe_hash'][:12]}, "
              f"kernel {info['kernel_version']}); --force rebuilds it")
        return 0
    sizes = ", ".join(f"{file} {f['size'] / 2**20:.1f} MiB" for file, f in info["files"].items())
    print(f"{name} image built in {target}: {sizes}, kernel {info['kernel_version']}, "
          f"{len(info['modules'])} modules, {info['build_seconds']} s")
    if result.missing:
        print(f"  modules not in this kernel (skipped): {', '.join(result.missing)}")
    return 0


def build_node(cfg: Config, target: Path, force: bool, formats: str) -> int:
    try:
        chosen = outputs.parse_formats(formats)
        node.build(target, node.default_cache(cfg.node.state_dir), chosen,
                   packages=enroll.default_cache(cfg.node.state_dir), force=force,
                   say=lambda line: print(line, flush=True))
    except (ValueError, node.BuildError, DiskError, RecipeError, PackageError, OSError) as exc:
        print(f"appliance: cannot build the node image: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
