"""Every error under /api/ comes back in the envelope of API.md."""

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.config.urls")]


def _error(response):
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def test_validation_error_names_the_parameter(storefront):
    response = storefront.post("/api/v1/_test/echo/", {"name": "x" * 11}, format="json")

    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "parameter_invalid"
    assert error["param"] == "name"


def test_missing_parameter_is_parameter_missing(storefront):
    response = storefront.post("/api/v1/_test/echo/", {}, format="json")

    assert response.status_code == 400
    assert _error(response) == {
        "type": "invalid_request_error",
        "code": "parameter_missing",
        "message": "name: This field is required.",
        "param": "name",
    }


def test_unknown_field_is_rejected(storefront):
    response = storefront.post("/api/v1/_test/echo/", {"name": "ok", "status": "succeeded"}, format="json")

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "parameter_invalid"
    assert error["param"] == "status"


def test_body_that_is_not_an_object_is_rejected(storefront):
    response = storefront.post("/api/v1/_test/echo/", [1, 2], format="json")

    assert response.status_code == 400
    assert _error(response)["code"] == "parameter_invalid"


def test_malformed_json_is_400(storefront):
    response = storefront.post("/api/v1/_test/echo/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert _error(response)["code"] == "parameter_invalid"


def test_missing_token_is_401(anon):
    response = anon.post("/api/v1/_test/echo/", {"name": "ok"}, format="json")

    assert response.status_code == 401
    assert _error(response) == {
        "type": "authentication_error",
        "code": "not_authenticated",
        "message": "Authentication required.",
    }
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_bad_token_is_401_token_invalid(anon):
    anon.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")

    response = anon.post("/api/v1/_test/echo/", {"name": "ok"}, format="json")

    assert response.status_code == 401
    assert _error(response)["code"] == "token_invalid"


def test_staff_user_without_api_role_is_403(make_client):
    client = make_client("no-role", "")

    response = client.post("/api/v1/_test/echo/", {"name": "ok"}, format="json")

    assert response.status_code == 403
    assert _error(response) == {
        "type": "permission_error",
        "code": "permission_denied",
        "message": "You do not have permission to perform this action.",
    }


@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/v1/payments/pay_missing/nothing", "/api/other"])
def test_unknown_url_is_404_in_envelope(storefront, path):
    response = storefront.get(path)

    assert response.status_code == 404
    assert _error(response)["code"] == "resource_missing"


def test_wrong_method_is_405(storefront):
    response = storefront.get("/api/v1/_test/echo/")

    assert response.status_code == 405
    error = _error(response)
    assert error["code"] == "method_not_allowed"
    assert "GET" in error["message"]


def test_form_body_is_415(storefront):
    response = storefront.post("/api/v1/_test/echo/", "name=ok", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert _error(response)["code"] == "unsupported_media_type"


def test_body_over_the_limit_is_body_too_large(storefront, settings):
    settings.API_MAX_BODY_BYTES = 100

    response = storefront.post("/api/v1/_test/echo/", {"name": "x" * 200}, format="json")

    assert response.status_code == 400
    assert _error(response)["code"] == "body_too_large"


def test_unhandled_exception_is_generic_500_without_traceback(storefront, caplog):
    response = storefront.get("/api/v1/_test/boom/")

    assert response.status_code == 500
    error = _error(response)
    assert error["type"] == "api_error"
    assert error["code"] == "internal_error"
    assert "kaboom" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert any("Unhandled error" in record.getMessage() for record in caplog.records)


def test_unhandled_exception_in_plain_django_view_is_500_envelope(storefront):
    storefront.raise_request_exception = False

    response = storefront.get("/api/v1/_test/plain-boom/")

    assert response.status_code == 500
    assert _error(response)["code"] == "internal_error"
