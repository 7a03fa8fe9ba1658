"""WebSocket consumers (Django Channels) of the kinds a shop runs: a chat-like echo, and a
live feed that pushes an event every 100 ms (order status, stock levels)."""

import asyncio
import json

from channels.generic.websocket import AsyncWebsocketConsumer

TICK_SECONDS = 0.1


class EchoConsumer(AsyncWebsocketConsumer):
    """Sends every message back as it came (text or binary).

    ``close:CODE:REASON`` makes the server close the socket with that code and reason.
    """

    async def connect(self):
        offered = self.scope.get("subprotocols") or []
        await self.accept(subprotocol="chat.v2" if "chat.v2" in offered else None)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is not None and text_data.startswith("close:"):
            _, code, reason = text_data.split(":", 2)
            await self.close(code=int(code), reason=reason)
            return
        await self.send(text_data=text_data, bytes_data=bytes_data)


class TicksConsumer(AsyncWebsocketConsumer):
    """Pushes ``{"tick": N}`` every 100 ms through the channel layer, as a feed fed by other
    parts of the site would be."""

    async def connect(self):
        await self.accept()
        self.ticker = asyncio.create_task(self.tick())

    async def tick(self):
        number = 0
        while True:
            await self.channel_layer.send(self.channel_name, {"type": "feed.tick", "number": number})
            number += 1
            await asyncio.sleep(TICK_SECONDS)

    async def feed_tick(self, event):
        await self.send(text_data=json.dumps({"tick": event["number"]}))

    async def disconnect(self, code):
        self.ticker.cancel()
