"""User management (admins): list, add, change role. Every change is audited by pipeline.users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dashboard.deps import Admin, DbSession, render
from pipeline.users import Role, add_user, list_users, set_role

router = APIRouter(tags=["users"])


@router.get("/users")
def users_page(request: Request, user: Admin, session: DbSession) -> Response:
    return render(request, "users.html", {"user": user, "users": list_users(session), "roles": list(Role)})


@router.post("/users")
def create_user(
    user: Admin,
    session: DbSession,
    name: Annotated[str, Form()],
    role: Annotated[Role, Form()],
    password: Annotated[str, Form()],
) -> Response:
    add_user(session, name, role, password, created_by=user.name)
    session.commit()
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{name}/role")
def change_role(user: Admin, session: DbSession, name: str, role: Annotated[Role, Form()]) -> Response:
    set_role(session, user, name, role)
    session.commit()
    return RedirectResponse("/users", status_code=303)
