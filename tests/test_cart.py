"""The cart as a plain object, and the two stores that keep it."""

from decimal import Decimal

import pytest

from shop import services
from shop.cart import Cart, SessionCartStore, StaleCartError, UserCartStore
from shop.models import CartLine, CartVersion, Product


def test_set_add_remove_and_total() -> None:
    cart = Cart()
    cart.set(1, 2)
    cart.add(2)
    cart.add(2, 3)
    assert list(cart) == [(1, 2), (2, 4)]
    assert cart.total({1: Decimal("1.50"), 2: Decimal("2.00")}) == Decimal("11.00")
    assert cart.total({2: Decimal("2.00")}) == Decimal("8.00")  # no price (deleted): nothing
    cart.set(1, 0)
    cart.remove(2)
    assert len(cart) == 0


def test_adding_stops_at_the_maximum() -> None:
    cart = Cart({1: 98})
    cart.add(1, 5)
    assert cart.quantity(1) == 99


@pytest.mark.parametrize("quantity", [-1, 100])
def test_a_quantity_out_of_range_is_refused(quantity: int) -> None:
    with pytest.raises(ValueError, match="between 0 and 99"):
        Cart().set(1, quantity)


def test_round_trips_through_json_friendly_dict() -> None:
    cart = Cart({3: 1, 12: 4}, version=7)
    assert cart.to_dict() == {"lines": {"3": 1, "12": 4}, "version": 7}
    assert Cart.from_dict(cart.to_dict()) == cart
    assert Cart.from_dict(cart.to_dict()).version == 7


@pytest.mark.parametrize(
    "stored", [{"lines": {"3": 1}}, {"lines": {}, "version": -1}, {"version": "2"}]
)
def test_a_stored_cart_without_a_valid_version_reads_as_version_0(stored: object) -> None:
    assert Cart.from_dict(stored).version == 0


@pytest.mark.parametrize(
    "junk", [None, "x", [], {"lines": "x"}, {"lines": {"a": 1, "2": "x", "3": -5, "4": 2}}]
)
def test_a_malformed_stored_cart_reads_as_what_can_be_saved(junk: object) -> None:
    cart = Cart.from_dict(junk)
    assert list(cart) in ([], [(4, 2)])


def test_session_store_keeps_the_cart_as_one_value() -> None:
    session: dict = {}
    store = SessionCartStore(session)
    cart = store.load()
    cart.set(5, 2)
    store.save(cart)
    assert session == {"cart": {"lines": {"5": 2}, "version": 1}}
    assert cart.version == 1


def test_session_store_bumps_the_version_only_when_the_lines_change() -> None:
    session: dict = {"cart": {"lines": {"5": 2}}}  # saved before carts had versions
    store = SessionCartStore(session)
    cart = store.load()
    assert cart.version == 0
    cart.set(5, 2)  # the same quantity
    store.save(cart)
    assert (cart.version, session["cart"]["version"]) == (0, 0)
    cart.set(5, 3)
    store.save(cart)
    assert (cart.version, session["cart"]["version"]) == (1, 1)


def test_a_save_that_changes_nothing_leaves_the_session_unchanged() -> None:
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    session = SessionStore()
    session["cart"] = {"lines": {"5": 2}, "version": 3}
    session.modified = False  # as loaded
    store = SessionCartStore(session)
    cart = store.load()
    cart.set(5, 2)  # what is there already
    store.save(cart)
    assert not session.modified  # so Django neither saves nor re-sends it
    assert cart.version == 3
    cart.set(5, 4)
    store.save(cart)
    assert session.modified
    assert session["cart"] == {"lines": {"5": 4}, "version": 4}


def test_session_store_refuses_a_save_expecting_another_version() -> None:
    session: dict = {"cart": {"lines": {"5": 2}, "version": 4}}
    store = SessionCartStore(session)
    with pytest.raises(StaleCartError) as refused:
        store.save(Cart({5: 9}), expected=3)
    assert refused.value.version == 4
    assert session == {"cart": {"lines": {"5": 2}, "version": 4}}


@pytest.mark.django_db
def test_user_store_writes_only_the_lines_it_changed(django_user_model) -> None:
    user = django_user_model.objects.create_user("bob")
    a, b = Product.objects.order_by("pk")[:2]
    tab1, tab2 = UserCartStore(user), UserCartStore(user)
    cart1, cart2 = tab1.load(), tab2.load()  # both tabs read the empty cart
    cart1.set(a.pk, 1)
    cart2.set(b.pk, 2)
    tab1.save(cart1)
    tab2.save(cart2)  # does not erase tab 1's line
    assert dict(CartLine.objects.filter(user=user).values_list("product_id", "quantity")) == {
        a.pk: 1,
        b.pk: 2,
    }


@pytest.mark.django_db
def test_user_store_keeps_the_version_in_the_database(django_user_model) -> None:
    user = django_user_model.objects.create_user("dora")
    product = Product.objects.order_by("pk").first()
    store = UserCartStore(user)
    cart = store.load()
    assert cart.version == 0
    assert not CartVersion.objects.filter(user=user).exists()  # no row until the first change
    cart.set(product.pk, 2)
    store.save(cart)
    assert cart.version == 1
    cart.set(product.pk, 2)
    store.save(cart)  # nothing changed: nothing written
    assert cart.version == 1
    assert UserCartStore(user).load().version == 1
    assert CartVersion.objects.get(user=user).version == 1


@pytest.mark.django_db
def test_of_two_conditional_saves_from_the_same_version_only_the_first_writes(
    django_user_model,
) -> None:
    """Two instances both passed the If-Match check: the compare-and-set lets one through."""
    user = django_user_model.objects.create_user("erin")
    a, b = Product.objects.order_by("pk")[:2]
    first, late = UserCartStore(user), UserCartStore(user)
    cart1, cart2 = first.load(), late.load()
    cart1.set(a.pk, 2)
    cart2.set(b.pk, 5)
    first.save(cart1, expected=0)
    with pytest.raises(StaleCartError) as refused:
        late.save(cart2, expected=0)
    assert refused.value.version == 1
    assert dict(UserCartStore(user).load()) == {a.pk: 2}  # the late write changed nothing
    assert CartVersion.objects.get(user=user).version == 1


@pytest.mark.django_db
def test_a_price_saved_in_this_process_shows_in_the_next_total() -> None:
    product = Product.objects.order_by("pk").first()
    cart = Cart({product.pk: 2})
    before = services.cart_total(cart)
    product.price += Decimal("1.00")
    product.save()
    assert services.cart_total(cart) == before + Decimal("2.00")


@pytest.mark.django_db
def test_a_price_changed_by_another_instance_shows_within_the_price_lists_age(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(services.time, "monotonic", lambda: clock[0])
    prices = services.PriceList(max_age=10.0)
    product = Product.objects.order_by("pk").first()
    old = prices.get()[product.pk]
    # A queryset update sends no signal: as if another instance had saved it.
    Product.objects.filter(pk=product.pk).update(price=old + 1)
    clock[0] += 10.0
    assert prices.get()[product.pk] == old
    clock[0] += 0.1
    assert prices.get()[product.pk] == old + 1


@pytest.mark.django_db
def test_checkout_charges_the_databases_price_even_when_the_copy_is_stale(
    django_user_model,
) -> None:
    product = Product.objects.order_by("pk").first()
    store = SessionCartStore({})
    store.save(Cart({product.pk: 2}))
    services.PRICES.get()  # this process has a copy ...
    Product.objects.filter(pk=product.pk).update(price=Decimal("50.00"))  # ... now stale
    user = django_user_model.objects.create_user(username="payer", password="x")
    order = services.order_place(user, store)
    assert order.total == Decimal("100.00")
