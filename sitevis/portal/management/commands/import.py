"""import: the boxes of an Ansible inventory into the portal (sites made as needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sitevis.inventory import InventoryError, inventory_path
from sitevis.paths import ProjectNotFound, project_dir
from sitevis.portal.changes import context
from sitevis.portal.sync.inventory import BoxInventory, InventoryBox
from sitevis.portal.sync.load import load_boxes


class Command(BaseCommand):
    help = "Load the boxes of an Ansible inventory (group boxes) into the portal"

    def add_arguments(self, parser: Any) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("-i", "--inventory",
                            help="inventory path (default: ansible.cfg's)")
        source.add_argument("--json", help="a JSON list of {name, site, address, groups} "
                            "(what the portal role writes from the inventory it runs with)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["json"]:
            boxes = _from_json(Path(options["json"]))
        else:
            try:
                project = project_dir()
                inventory = BoxInventory(project, inventory_path(project, options["inventory"]))
                boxes = inventory.box_records()
            except (InventoryError, ProjectNotFound) as err:
                raise CommandError(str(err)) from None
        token = context.bind(context.Actor.command("import"))
        try:
            counts = load_boxes(boxes)
        finally:
            context.reset(token)
        self.stdout.write(", ".join(f"{v} {k}" for k, v in counts.items()))


def _from_json(path: Path) -> list[InventoryBox]:
    try:
        data = json.loads(path.read_text())
        return [InventoryBox(str(b["name"]), str(b["site"]), str(b.get("address") or ""),
                             tuple(sorted(b.get("groups") or ()))) for b in data]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CommandError(f"--json {path}: {err}") from None
