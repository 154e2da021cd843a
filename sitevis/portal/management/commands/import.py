"""import: the boxes of an Ansible inventory into the portal (sites made as needed)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sitevis.inventory import InventoryError, inventory_path
from sitevis.paths import ProjectNotFound, project_dir
from sitevis.portal.changes import context
from sitevis.portal.sync.inventory import BoxInventory
from sitevis.portal.sync.load import load_boxes


class Command(BaseCommand):
    help = "Load the boxes of an Ansible inventory (group boxes) into the portal"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("-i", "--inventory",
                            help="inventory path (default: ansible.cfg's)")

    def handle(self, *args: Any, **options: Any) -> None:
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
