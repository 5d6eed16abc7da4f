import type { RotationStarted, RotationView } from '@service-foundry/api';
import type { FastifyInstance } from 'fastify';
import type { BrokerContext } from '../broker-context.js';
import { readRotationView, startRotation } from '../credential-rotation.js';
import { requireInstance } from '../instance-lookup.js';
import { BodyProblems, operatorOf } from '../operator-input.js';
import { notFound } from '../osb-errors.js';

type InstanceParams = { Params: { id: string } };

/**
 * Rotation of an instance's own admin and replication passwords under the operator login
 * (`sf rotate-credentials`; credential-rotation.ts). Binding credentials rotate through OSB
 * (`predecessor_binding_id`); these are the passwords the platform itself uses.
 */
export function credentialRoutes(app: FastifyInstance, ctx: BrokerContext): void {
  const view = async (id: string): Promise<RotationView> => {
    const found = await readRotationView(ctx, id);
    if (!found) throw notFound(`instance ${id} does not exist`);
    return found;
  };

  app.get<InstanceParams>('/sf/v1/instances/:id/credentials-rotation', async (request): Promise<RotationView> => {
    const instance = (await requireInstance(ctx, request.params.id)).value;
    return view(instance.id);
  });

  app.post<InstanceParams>(
    '/sf/v1/instances/:id/credentials-rotation',
    async (request, reply): Promise<RotationStarted> => {
      const problems = new BodyProblems('credentials rotation request');
      problems.fields(request.body, []);
      problems.fail();
      const by = operatorOf(request);
      const instance = (await requireInstance(ctx, request.params.id)).value;
      const { operation, started } = await startRotation(ctx, instance.id, by);
      if (started) request.log.info({ instanceId: instance.id, by }, 'credentials rotation accepted');
      return reply.code(202).send({ ...(await view(instance.id)), operation, started });
    },
  );
}
