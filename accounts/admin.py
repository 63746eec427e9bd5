"""Admin for users and API clients."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "api_role", "is_staff", "is_active", "last_login")
    list_filter = ("api_role", "is_staff", "is_superuser", "is_active", "groups")
    fieldsets = (*(BaseUserAdmin.fieldsets or ()), ("API", {"fields": ("api_role",)}))
