"""A FastAPI app on pydantic and SQLAlchemy's asyncio ORM (aiosqlite), for
tests/test_serve.py: the stack most asyncio services are built on, whose C
extensions (pydantic-core, SQLAlchemy's and greenlet) refuse subinterpreters.

``POST /items`` stores an item validated by pydantic, ``GET /items`` lists
them, ``GET /whoami`` says which process and thread answered.
"""

import os
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    price: Mapped[float]


class ItemIn(BaseModel):
    name: str
    price: float


class ItemOut(ItemIn):
    id: int


@asynccontextmanager
async def lifespan(app: FastAPI):
    # One engine per worker, made in its own event loop (the lifespan state).
    engine = create_async_engine(f"sqlite+aiosqlite:///{os.environ['SERVE_TEST_DB']}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    except OperationalError as exc:  # another worker created it at the same moment
        if "already exists" not in str(exc):
            raise
    yield {"sessions": async_sessionmaker(engine, expire_on_commit=False)}
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


def _sessions(request) -> async_sessionmaker[AsyncSession]:
    return request.state.sessions


@app.post("/items", response_model=ItemOut)
async def create_item(item: ItemIn, request: Request) -> Item:
    async with _sessions(request)() as session, session.begin():
        row = Item(name=item.name, price=item.price)
        session.add(row)
    return row


@app.get("/items", response_model=list[ItemOut])
async def list_items(request: Request) -> list[Item]:
    async with _sessions(request)() as session:
        return list((await session.scalars(select(Item).order_by(Item.id))).all())


@app.get("/whoami")
async def whoami() -> dict[str, int]:
    return {"pid": os.getpid(), "thread": threading.get_ident()}
