"""The host project's own views: one API view in its schema, one page behind the login."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class GreetingSerializer(serializers.Serializer):  # type: ignore[type-arg]
    text = serializers.CharField()


class GreetingView(APIView):
    @extend_schema(responses=GreetingSerializer)
    def get(self, request: Request) -> Response:
        return Response({"text": "hello"})


def private(request: HttpRequest) -> HttpResponse:
    return HttpResponse("only for logged-in users")
