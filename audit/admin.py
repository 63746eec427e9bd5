"""Back office for the audit trail (read-only, by anyone) and the four-eyes approval requests."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest

from audit.approvals import approval_summary
from audit.errors import ApprovalBySelf, ApprovalNotAllowed, ApprovalNotPending
from audit.models import ApprovalRequest, ApprovalStatus, StaffAction
from audit.services import approval_request_approve, approval_request_reject, staff_action_record
from config.admin import CappedCountPaginator, CsvExportMixin


class AuditedCsvExportMixin(CsvExportMixin):
    """CSV export whose every use is a staff action in the hash chain (with the filters it ran with)."""

    def csv_exported(self, request: HttpRequest, *, after: dict[str, Any]) -> None:
        staff_action_record(
            actor=request.user,  # type: ignore[arg-type]
            action="export_csv",
            object_type=self.csv_object_type,
            object_id="-",
            after=after,
            remote_addr=request.META.get("REMOTE_ADDR"),
        )


class NoWriteAdminMixin:
    """Audit rows are written by services only: nobody adds, changes or deletes them here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StaffAction)
class StaffActionAdmin(NoWriteAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "actor", "action", "object_type", "object_id", "reason", "remote_addr")
    list_filter = ("action", "object_type", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=object_id", "=actor__username")
    list_select_related = ("actor",)
    show_full_result_count = False
    paginator = CappedCountPaginator
    ordering = ("-id",)
    readonly_fields = (
        "actor",
        "action",
        "object_type",
        "object_id",
        "reason",
        "before",
        "after",
        "remote_addr",
        "created_at",
        "previous_hash",
        "hash",
    )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return user.is_active and user.is_staff and user.has_perm("audit.view_audit_trail")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(NoWriteAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "kind",
        "object_id",
        "summary",
        "reason",
        "requested_by",
        "created_at",
        "decided_by",
    )
    list_filter = ("status", "kind")
    search_fields = ("=object_id",)
    list_select_related = ("requested_by", "decided_by")
    show_full_result_count = False
    ordering = ("-created_at", "-id")
    actions = ("approve_selected", "reject_selected")
    readonly_fields = (
        "kind",
        "object_type",
        "object_id",
        "summary",
        "params",
        "reason",
        "status",
        "requested_by",
        "created_at",
        "decided_by",
        "decided_at",
        "decision_reason",
        "result",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalRequest]:
        # annotate before ordering: pending requests first, then the newest
        pending_first = Case(
            When(status=ApprovalStatus.PENDING, then=Value(0)), default=Value(1), output_field=IntegerField()
        )
        return ApprovalRequest.objects.annotate(pending_first=pending_first)

    def get_ordering(self, request: HttpRequest) -> list[str]:
        # `pending_first` is the annotation above; the `ordering` attribute may only name fields.
        return ["pending_first", "-created_at", "-id"]

    @admin.display(description="what")
    def summary(self, obj: ApprovalRequest) -> str:
        return approval_summary(obj)

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("audit.approve_request")

    @admin.action(description="Approve selected requests (runs the action)", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject selected requests", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, approve=False)

    def _decide(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest], *, approve: bool) -> None:
        decide = approval_request_approve if approve else approval_request_reject
        remote_addr = request.META.get("REMOTE_ADDR")
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                decided = decide(request_id=pk, approver=request.user, remote_addr=remote_addr)  # type: ignore[arg-type]
            except (ApprovalBySelf, ApprovalNotAllowed, ApprovalNotPending) as exc:
                self.message_user(request, f"Request {pk}: {exc.message}", messages.ERROR)
                continue
            if decided.status == ApprovalStatus.FAILED:
                self.message_user(request, f"Request {pk} approved, but it failed: {decided.result}", messages.ERROR)
            else:
                text = f"Request {pk} {decided.status}" + (f": {decided.result}" if decided.result else ".")
                self.message_user(request, text, messages.SUCCESS)
