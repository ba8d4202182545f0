"""The admin's actions on uncertain submissions, and the owner and reference columns."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from tests.support.admin import action, change_url, page_messages
from tests.support.settings import topview
from topview_callbacks.client import TopviewClient
from topview_callbacks.models import SubmittedTask, TaskStatus
from topview_callbacks.testing import mock_topview

TASKS = reverse("admin:topview_callbacks_submittedtask_changelist")
pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client: Client) -> Client:
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="topview_callbacks",
            codename__in=["view_submittedtask", "replay_notice"],
        )
    )
    client.force_login(user)
    return client


def uncertain(reference: str) -> SubmittedTask:
    task = TopviewClient().enqueue("COMMON_TASK_TEXT2IMAGE", reference=reference, prompt="x")
    SubmittedTask.objects.filter(pk=task.pk).update(status=TaskStatus.UNCERTAIN)
    task.refresh_from_db()
    return task


def test_resend_queues_it_again_and_records_who(operator: Client) -> None:
    task = uncertain("r1")
    answered = TopviewClient().enqueue("COMMON_TASK_TEXT2IMAGE", prompt="y")
    with topview(PROCESSING="manual"), mock_topview():
        response = action(operator, TASKS, "resend_uncertain", [task, answered])
    assert ("success", "1 submission queued again.") in page_messages(response)
    task.refresh_from_db()
    assert task.status == TaskStatus.QUEUED
    assert task.resolution.startswith("Resent by operator at ")


def test_give_up_ends_it_failed_and_records_who(operator: Client) -> None:
    task = uncertain("r2")
    response = action(operator, TASKS, "give_up_uncertain", [task])
    assert ("success", "1 submission given up.") in page_messages(response)
    task.refresh_from_db()
    assert task.status == TaskStatus.FAIL
    assert task.resolution.startswith("Given up by operator at ")


def test_the_list_shows_owner_reference_and_finds_by_reference(operator: Client) -> None:
    owner = User.objects.create(username="the-owner")
    TopviewClient().enqueue("COMMON_TASK_TEXT2IMAGE", owner=owner, reference="order-9")
    page = operator.get(TASKS, {"q": "order-9"}).content.decode()
    assert "order-9" in page and f"auth.user {owner.pk}" in page
    task = SubmittedTask.objects.get()
    assert "order-9" in operator.get(change_url(task)).content.decode()


def test_viewers_cannot_resend(client: Client) -> None:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_submittedtask"))
    client.force_login(user)
    assert 'value="resend_uncertain"' not in client.get(TASKS).content.decode()
