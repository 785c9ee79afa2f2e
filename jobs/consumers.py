"""Websocket consumers. Access is checked in ``connect``; anonymous users are refused."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class HelloConsumer(AsyncJsonWebsocketConsumer):
    """Proves the socket is authenticated: greets the session user, echoes what it gets."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.accept()
        await self.send_json({"type": "hello", "user": user.username})

    async def receive_json(self, content, **kwargs):
        await self.send_json({"type": "echo", "data": content})
