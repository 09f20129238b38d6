"""The scaffolding works: a communicator reaches a consumer, a live server answers."""

from __future__ import annotations

from tests.backend.fixtures import access_token, communicator, make_user


async def test_ping_gets_pong_on_the_user_channel(db: None) -> None:
    from channels.db import database_sync_to_async

    user = await database_sync_to_async(make_user)("alice")
    socket = communicator(f"/ws/user/{user.pk}/", access_token(user))
    connected, _ = await socket.connect()
    assert connected
    await socket.send_json_to({"type": "ping", "timestamp": 5})
    reply = await socket.receive_json_from()
    assert reply == {"type": "pong", "timestamp": 5, "seq": 0}
    await socket.disconnect()
