import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventLog, nodeControlCodec, readRecord, waitFor } from '@service-foundry/core';
import { uniqueId } from '@service-foundry/test-support';
import { operatorLogin, viewerLogin } from '@service-foundry/test-support/broker-calls';
import { type Browser, chromium } from 'playwright-core';
import { type Harness, startHarness } from './helpers.js';

/** Debian's chromium (scripts/setup.sh installs it); no browser is downloaded. */
const chromiumPath = process.env.SF_CHROMIUM ?? '/usr/bin/chromium';

/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, against a
 * real broker on a real etcd. The controller's and agents' parts (an instance becoming
 * ready, a failover event) are written the way they write them.
 */
describe('dashboard in Chromium', () => {
  let h: Harness;
  let browser: Browser;

  before(async () => {
    h = await startHarness();
    await h.putNode('node-a', { labels: { zone: 'z1' } });
    await h.putNode('node-b', { labels: { zone: 'z2' } });
    // As root: Chromium's sandbox needs an unprivileged user.
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
    await h?.close();
  });

  it('shows nodes and a provisioned instance, a failover live, and runs an action after a confirmation', async () => {
    const context = await browser.newContext({
      httpCredentials: { username: operatorLogin.user, password: operatorLogin.password },
      viewport: { width: 1400, height: 900 },
    });
    const page = await context.newPage();
    const failures: string[] = [];
    page.on('pageerror', (error) => failures.push(error.message));
    // Everything the page loads comes from the broker: nothing from a CDN.
    const origins = new Set<string>();
    page.on('request', (request) => origins.add(new URL(request.url()).origin));
    await page.goto(`${h.broker.url}/sf/v1/dashboard`);
    await page.waitForSelector('#connection.live');
    await page.waitForSelector('tr[data-node="node-a"]');

    // An instance provisioned through OSB appears, and turns ready when the controller says so.
    const id = uniqueId('dash');
    assert.equal((await h.provision(id, { context: { instance_name: 'orders-db' } })).status, 202);
    const name = (await h.readInstance(id))?.name as string;
    const row = page.locator(`tr[data-instance="${name}"]`);
    await row.waitFor();
    await h.markReady(id);
    await waitFor(async () => (await row.innerText()).includes('ready'), {
      description: 'the instance shown ready',
      timeoutMs: 10_000,
    });

    // The same analysis as `sf explain`, on the page.
    await row.locator('button', { hasText: 'explain' }).click();
    const explained = page.locator('#explain li').first();
    await explained.waitFor();
    assert.match(await explained.innerText(), /^orders-db \(postgres small\) is ready/);

    // A failover, as the controller records it, shows up without a reload.
    const events = new EventLog(h.client, h.keys, 'ctl');
    await events.record('failover-promote', 'primary node node-a is down; promoting replica 1 (epoch 42)', {
      instanceId: id,
      node: 'node-b',
    });
    const event = page.locator('#events li[data-kind="failover-promote"]');
    await event.waitFor();
    assert.match(await event.innerText(), /promoting replica 1 \(epoch 42\)/);

    // Cordon node-a: asked first, then done, and the page shows it.
    const asked: string[] = [];
    page.on('dialog', (dialog) => {
      asked.push(dialog.message());
      void dialog.accept();
    });
    await page.locator('tr[data-node="node-a"] button', { hasText: 'cordon' }).first().click();
    await waitFor(
      async () => (await readRecord(h.client, nodeControlCodec, h.keys.nodeControl('node-a')))?.value.cordoned,
      { description: 'node-a cordoned in etcd', timeoutMs: 10_000 },
    );
    assert.match(asked[0] ?? '', /Cordon node-a\?/);
    await waitFor(async () => (await page.locator('tr[data-node="node-a"]').innerText()).includes('cordoned'), {
      description: 'node-a shown cordoned',
      timeoutMs: 10_000,
    });
    if (process.env.SF_DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.SF_DASHBOARD_SCREENSHOT });
    assert.deepEqual([...origins], [h.broker.url]);
    assert.deepEqual(failures, []);
    await context.close();
  });

  it('a viewer sees the page; its action is refused and nothing changes', async () => {
    const context = await browser.newContext({
      httpCredentials: { username: viewerLogin.user, password: viewerLogin.password },
    });
    const page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(`${h.broker.url}/sf/v1/dashboard`);
    await page.locator('tr[data-node="node-b"] button', { hasText: 'drain' }).click();
    await page.waitForSelector('#notice.bad');
    assert.match(await page.locator('#notice').innerText(), /drain refused \(403\)/);
    assert.equal(await readRecord(h.client, nodeControlCodec, h.keys.nodeControl('node-b')), undefined);
    await context.close();
  });

  it('asks for a login', async () => {
    const res = await fetch(`${h.broker.url}/sf/v1/dashboard`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic/);
  });
});
