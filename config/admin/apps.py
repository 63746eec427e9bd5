"""The admin app with the two-factor site as its default site (`config.admin.site.StaffAdminSite`).

Listed in INSTALLED_APPS in place of `django.contrib.admin`: `admin.site`, which every app registers its
models with, is then the two-factor site. Kept apart from the site's module, which imports forms (and so
models) that cannot load while the app registry is being filled.
"""

from django.contrib.admin.apps import AdminConfig


class StaffAdminConfig(AdminConfig):
    default_site = "config.admin.site.StaffAdminSite"
