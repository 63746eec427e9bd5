"""django-auditlog's entries: drop the `_like` indexes of `object_pk` and `cid` (issue #14).

The audit screens find an object's entries and a request's entries by exact value (the plain indexes stay);
every audited save writes an entry, so each index costs on every money-path request (config/migration_ops.py).
"""

from django.db import migrations

from config.migration_ops import drop_pattern_indexes


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_staffaction_personal_digests"),
        ("auditlog", "0017_add_actor_email"),
    ]

    operations = [
        drop_pattern_indexes("auditlog", "logentry", "object_pk", "cid"),
    ]
