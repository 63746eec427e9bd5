"""Test-only URLs: views that exercise the error plumbing."""

from django.urls import path
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from config.api.serializers import StrictSerializer
from config.urls import urlpatterns as project_urlpatterns


class EchoSerializer(StrictSerializer):
    name = serializers.CharField(max_length=10)
    count = serializers.IntegerField(required=False)


@api_view(["POST"])
def echo(request):
    serializer = EchoSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return Response(serializer.validated_data)


@api_view(["GET"])
def boom(request):
    raise RuntimeError("kaboom with secret sk_test_abcdef123456 and card 4242424242424242")


def plain_boom(request):
    raise KeyError("not a DRF view")


urlpatterns = [
    path("api/v1/_test/echo/", echo),
    path("api/v1/_test/boom/", boom),
    path("api/v1/_test/plain-boom/", plain_boom),
    *project_urlpatterns,
]
