"""createuser: a portal user in one of the groups, limited to sites or not."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from sitevis.portal.accounts.models import SiteScope
from sitevis.portal.accounts.roles import ADMIN, ROLES
from sitevis.portal.changes import context
from sitevis.portal.inventory.models import Site


class Command(BaseCommand):
    help = "Create or update a portal user (password from a file, or generated and printed)"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--group", choices=ROLES, default="viewer")
        parser.add_argument("--site", action="append", default=[],
                            help="limit to this site (repeat); default: every site")
        parser.add_argument("--password-file",
                            help="file holding the password, - for stdin "
                                 "(default: generate, print once)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["password_file"]:
            try:
                # "-": the already open stdin (a service user cannot reopen root's pipe).
                given = options["password_file"]
                password = (sys.stdin.read() if given == "-" else Path(given).read_text()).strip()
            except OSError as err:
                raise CommandError(f"--password-file: {err.strerror}") from None
            if len(password) < 12:
                raise CommandError("--password-file: at least 12 characters")
            generated = False
        else:
            password, generated = secrets.token_urlsafe(18), True
        sites = []
        for name in options["site"]:
            site = Site.objects.filter(name=name).first()
            if site is None:
                raise CommandError(f"--site {name}: no such site (import the inventory first)")
            sites.append(site)
        token = context.bind(context.Actor.command("createuser"))
        try:
            with transaction.atomic():
                user, created = get_user_model().objects.get_or_create(
                    username=options["username"])
                user.set_password(password)
                user.is_staff = options["group"] == ADMIN    # admins use Django's admin
                user.is_superuser = options["group"] == ADMIN and not sites
                user.save()
                user.groups.set([Group.objects.get(name=options["group"])])
                scope, _ = SiteScope.objects.get_or_create(user=user)
                scope.all_sites = not sites
                scope.save()
                scope.sites.set(sites)
        finally:
            context.reset(token)
        verb = "created" if created else "updated"
        self.stdout.write(f"{verb} {user.username} ({options['group']}, "
                          f"{'sites ' + ', '.join(options['site']) if sites else 'every site'})")
        if generated:
            sys.stdout.write(f"password: {password}\n")
