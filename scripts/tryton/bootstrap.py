#!/usr/bin/env python3
"""Bootstraps a Tryton database as Ferry's ERP test peer, matching the Centra simulator.

Run with the harness's venv python (trytond + proteus installed):

    python bootstrap.py --db ferry --data DIR --catalogue catalogue.json --maps 'tests/contracts/examples/*.map.csv'

Idempotent (every step is get-or-create). It creates: the modules Ferry needs; the brand's
company in SEK; the simulator's currencies with rates; the market countries; a minimal
chart of accounts and fiscal years; one sales tax per simulator tax rate, named as the
tenant rules' tax codes ("VAT25", "VAT8.875"); every catalogue size as a stocked good whose
code is the SKU, plus the ERP items of the public examples' SKU maps; the SHIPPING,
HANDLING and ROUNDING service items; a carrier; opening stock of 1000 per good. It prints
a JSON summary.
"""
import argparse
import csv
import datetime
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

MODULES = [
    'company', 'currency', 'country', 'party', 'product',
    'account', 'account_invoice', 'account_invoice_stock', 'account_product',
    'stock', 'sale', 'sale_discount', 'carrier', 'sale_shipment_cost',
    # Changes to a sale already being processed (Ferry's order changes after posting).
    'sale_history', 'sale_amendment',
    'stock_package', 'stock_package_shipping',
]
COMPANY = 'Ferry Demo Brand AB'
COUNTRIES = [
    ('SE', 'Sweden', 'SWE', '752'), ('GB', 'United Kingdom', 'GBR', '826'),
    ('DE', 'Germany', 'DEU', '276'), ('FR', 'France', 'FRA', '250'),
    ('US', 'United States', 'USA', '840'), ('JP', 'Japan', 'JPN', '392'),
]
SERVICES = [('SHIPPING', 'Shipping'), ('HANDLING', 'Handling'), ('ROUNDING', 'Rounding')]
OPENING_STOCK = 1000


def log(*args):
    print('[tryton-bootstrap]', *args, file=sys.stderr, flush=True)


def ensure_database(name):
    from trytond import backend
    database = backend.Database().connect()
    try:
        exists = name in database.list()
    finally:
        database.close()
    if not exists:
        database = backend.Database().connect()
        connection = database.get_connection(autocommit=True)
        try:
            database.create(connection, name)
        finally:
            database.put_connection(connection)
            database.close()
    database = backend.Database(name).connect()
    try:
        if not database.test():
            return set()
        connection = database.get_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT name FROM ir_module WHERE state = 'activated'")
            return {r[0] for r in cursor}
        finally:
            database.put_connection(connection)
    finally:
        database.close()


def run_admin(name, password):
    admin = os.path.join(os.path.dirname(sys.executable), 'trytond-admin')
    with tempfile.NamedTemporaryFile('w', suffix='.pass', delete=False) as f:
        f.write(password + '\n')
        passfile = f.name
    try:
        env = dict(os.environ, TRYTONPASSFILE=passfile)
        cmd = [admin, '-d', name, '--all', '--activate-dependencies',
               '--email', 'admin@example.com', '-u'] + MODULES
        started = time.monotonic()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        log('modules activated in %.0fs' % (time.monotonic() - started))
    finally:
        os.unlink(passfile)


def get_or_create(Model, domain, **values):
    found = Model.find(domain, limit=1)
    if found:
        return found[0], False
    record = Model(**values)
    record.save()
    return record, True


def tax_name(rate):
    return 'VAT%s' % rate


def bootstrap(db, catalogue, map_items):
    from proteus import Model, Wizard
    from proteus import config as pconfig

    cfg = pconfig.set_trytond(database=db)
    Currency = Model.get('currency.currency')
    Rate = Model.get('currency.currency.rate')
    Country = Model.get('country.country')
    Party = Model.get('party.party')
    Company = Model.get('company.company')
    User = Model.get('res.user')

    currencies = {}
    for c in catalogue['currencies']:
        digits = int(c['digits'])
        cur, new = get_or_create(
            Currency, [('code', '=', c['code'])], name=c['code'], code=c['code'],
            symbol=c['code'], digits=digits,
            rounding=Decimal(1).scaleb(-digits))
        if new:
            # Tryton's rates are units of the currency per unit of the company's (SEK).
            rate = (Decimal(1) / Decimal(c['sek_per_unit'])).quantize(Decimal('0.000001'))
            Rate(currency=cur, date=datetime.date(2000, 1, 1), rate=rate).save()
        currencies[c['code']] = cur

    countries = {}
    for code, name, code3, numeric in COUNTRIES:
        countries[code], _ = get_or_create(
            Country, [('code', '=', code)], name=name, code=code, code3=code3,
            code_numeric=numeric)

    companies = Company.find([('party.name', '=', COMPANY)])
    if companies:
        company, = companies
    else:
        party = Party(name=COMPANY)
        address, = party.addresses
        address.street = 'Lagergatan 1'
        address.city = 'Stockholm'
        address.postal_code = '114 35'
        address.country = countries['SE']
        party.save()
        wizard = Wizard('company.company.config')
        wizard.execute('company')
        wizard.form.party = party
        wizard.form.currency = currencies[catalogue['company_currency']]
        wizard.execute('add')
        company, = Company.find([('party.name', '=', COMPANY)])
    admin = User(cfg.user)
    if company not in admin.companies:
        admin.companies.append(Company(company.id))
        admin.company = company
        admin.save()
    cfg._context = User.get_preferences(True, {})

    Account = Model.get('account.account')
    AccountTemplate = Model.get('account.account.template')
    ModelData = Model.get('ir.model.data')

    def account(domain):
        return Account.find(
            [('company', '=', company.id), ('closed', '!=', True)] + domain, limit=1)

    if not Account.find([('company', '=', company.id)], limit=1):
        template = AccountTemplate(ModelData.get_id(
            'account.account_template_root_en', cfg.context))
        wizard = Wizard('account.create_chart')
        wizard.execute('account')
        wizard.form.account_template = template
        wizard.form.company = company
        wizard.execute('create_account')
        wizard.form.account_receivable, = account([('type.receivable', '=', True)])
        wizard.form.account_payable, = account([('type.payable', '=', True)])
        wizard.form.category_account_revenue, = account([('type.revenue', '=', True)])
        wizard.form.category_account_expense, = account([('type.expense', '=', True)])
        wizard.execute('create_properties')
    revenue, = account([('type.revenue', '=', True)])
    expense, = account([('type.expense', '=', True)])
    tax_account, = account([('code', '=', '6.3.4')])

    FiscalYear = Model.get('account.fiscalyear')
    SequenceStrict = Model.get('ir.sequence.strict')
    SequenceType = Model.get('ir.sequence.type')
    this_year = datetime.date.today().year
    for year in (this_year - 1, this_year, this_year + 1):
        start, end = datetime.date(year, 1, 1), datetime.date(year, 12, 31)
        if FiscalYear.find([('company', '=', company.id), ('start_date', '=', start)]):
            continue
        move_type, = SequenceType.find([('name', '=', 'Account Move')], limit=1)
        invoice_type, = SequenceType.find([('name', '=', 'Invoice')], limit=1)
        moves = SequenceStrict(name='Moves %s' % year, sequence_type=move_type, company=company)
        moves.save()
        invoices = SequenceStrict(name='Invoices %s' % year, sequence_type=invoice_type,
                                  company=company)
        invoices.save()
        fy = FiscalYear(name=str(year), company=company, start_date=start, end_date=end,
                        move_sequence=moves)
        seq, = fy.invoice_sequences
        seq.out_invoice_sequence = invoices
        seq.in_invoice_sequence = invoices
        seq.out_credit_note_sequence = invoices
        seq.in_credit_note_sequence = invoices
        fy.save()
        fy.click('create_period')

    Tax = Model.get('account.tax')
    taxes = {}
    for rate in catalogue['tax_rates']:
        name = tax_name(rate)
        taxes[name], _ = get_or_create(
            Tax, [('name', '=', name), ('company', '=', company.id)], name=name,
            description='Sales tax %s%%' % rate, type='percentage',
            rate=(Decimal(rate) / 100), company=company,
            invoice_account=tax_account, credit_note_account=tax_account)

    PaymentTerm = Model.get('account.invoice.payment_term')
    if not PaymentTerm.find([('name', '=', 'Immediate')]):
        term = PaymentTerm(name='Immediate')
        term.lines.new(type='remainder')
        term.save()

    Category = Model.get('product.category')
    category, _ = get_or_create(
        Category, [('name', '=', 'Goods')], name='Goods', accounting=True,
        account_revenue=revenue, account_expense=expense)

    Uom = Model.get('product.uom')
    unit, = Uom.find([('name', '=', 'Unit')])
    Template = Model.get('product.template')
    Product = Model.get('product.product')
    existing = {p.code for p in Product.find([])}

    def product(code, name, price, kind='goods'):
        if code in existing:
            return
        template = Template(name=name, type=kind, default_uom=unit, salable=True,
                            list_price=price, account_category=category)
        if kind == 'goods':
            template.sale_uom = unit
        variant, = template.products
        variant.suffix_code = code
        variant.cost_price = (price / 3).quantize(Decimal('0.0001'))
        template.save()
        existing.add(code)

    for item in catalogue['items']:
        product(item['code'], item['name'], Decimal(item['list_price_sek']))
    for code, name in map_items:
        product(code, name, Decimal('100'))
    for code, name in SERVICES:
        product(code, name, Decimal('0'), kind='service')

    Carrier = Model.get('carrier')
    if not Carrier.find([('party.name', '=', 'PostNord')], limit=1):
        carrier_party, _ = get_or_create(Party, [('name', '=', 'PostNord')], name='PostNord')
        shipping, = Product.find([('code', '=', 'SHIPPING')])
        Carrier(party=carrier_party, carrier_product=shipping,
                carrier_cost_method='product').save()

    Location = Model.get('stock.location')
    warehouse, = Location.find([('type', '=', 'warehouse')], limit=1)
    goods = Product.find([('type', '=', 'goods')])
    with cfg.set_context(locations=[warehouse.id]):
        on_hand = {p.id: p.quantity for p in Product.find([('type', '=', 'goods')])}
    Inventory = Model.get('stock.inventory')
    inventory = None
    for p in goods:
        if on_hand.get(p.id, 0) <= 0:
            if inventory is None:
                inventory = Inventory(location=warehouse.storage_location, company=company)
            line = inventory.lines.new(product=p)
            line.quantity = float(OPENING_STOCK)
    if inventory is not None:
        inventory.save()
        inventory.click('confirm')

    return {
        'database': db,
        'company': company.id,
        'warehouse': warehouse.id,
        'currencies': {code: c.id for code, c in currencies.items()},
        'taxes': {name: t.id for name, t in taxes.items()},
        'products': len(existing),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--db', required=True)
    parser.add_argument('--data', help='SQLite data directory')
    parser.add_argument('--uri', default='sqlite://',
                        help='database server: sqlite:// (with --data) or postgresql://USER@HOST:PORT/')
    parser.add_argument('--catalogue', required=True)
    parser.add_argument('--maps', default='', help='glob of SKU→ERP item CSV files')
    parser.add_argument('--admin-password', default=os.environ.get('TRYTON_ADMIN_PASSWORD', 'ferry-admin'))
    args = parser.parse_args()

    os.environ['TRYTOND_DATABASE__URI'] = args.uri
    if args.uri.startswith('sqlite'):
        if not args.data:
            parser.error('--data is needed for SQLite')
        os.makedirs(args.data, exist_ok=True)
        os.environ['TRYTOND_DATABASE__PATH'] = args.data
    started = time.monotonic()
    if set(MODULES) - ensure_database(args.db):
        run_admin(args.db, args.admin_password)
    with open(args.catalogue) as f:
        catalogue = json.load(f)
    map_items = []
    for path in sorted(glob.glob(args.maps)) if args.maps else []:
        with open(path) as f:
            for row in csv.DictReader(f):
                map_items.append((row['erp_item'], 'Mapped %s' % row['centra_sku']))
    summary = bootstrap(args.db, catalogue, map_items)
    summary['seconds'] = round(time.monotonic() - started, 1)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
