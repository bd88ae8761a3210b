using ExtProc.Pipeline;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ExtProc.Hosting;

/// <summary>Ready once a config snapshot is loaded, and no longer once draining has begun.</summary>
internal sealed class ReadinessHealthCheck : IHealthCheck
{
    private readonly PipelineSnapshotProvider _snapshots;
    private readonly DrainCoordinator _drain;

    public ReadinessHealthCheck(PipelineSnapshotProvider snapshots, DrainCoordinator drain)
    {
        _snapshots = snapshots;
        _drain = drain;
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (_drain.IsDraining)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("draining"));
        }

        return Task.FromResult(_snapshots.IsLoaded ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("configuration not loaded"));
    }
}
