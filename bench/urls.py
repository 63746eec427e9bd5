"""The benchmark's URL conf: the service's URLs plus two floor views that exist only here.

`/bench/floor/` is a bare JWT-authenticated DRF view; `/bench/insert/` does the same and one INSERT in a
transaction. Each endpoint's throughput is quoted as a ratio to the floor measured in the same run.
"""

from django.db import connection, transaction
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as service_urlpatterns


class FloorView(APIView):
    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class InsertView(APIView):
    def post(self, request: Request) -> Response:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_floor (created_at) VALUES (now())")
        return Response({"ok": True}, status=201)


urlpatterns = [
    path("bench/floor/", FloorView.as_view()),
    path("bench/insert/", InsertView.as_view()),
    *service_urlpatterns,
]
