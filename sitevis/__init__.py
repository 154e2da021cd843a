"""sitevis controller: rolls the site visibility stack out with Ansible."""

__version__ = "0.1.0"
