using System.Buffers;
using System.Security.Cryptography;
using ExtProc.Observability;
using ExtProc.Pipeline;
using ExtProc.Pipeline.Errors;
using ExtProc.Stages.Guard;
using ExtProc.Stages.Identify;
using ExtProc.Tenancy;
using ExtProc.Tenancy.Jwt;
using ExtProc.Tenancy.Keys;
using ExtProc.Tenancy.Peers;

namespace ExtProc.Stages.Auth;

/// <summary>
/// Turns what the caller presents into exactly one tenant, in the request-headers phase, before any
/// body is asked for. Rules, in order:
/// <list type="number">
/// <item>GET <c>/.well-known/oauth-protected-resource[/route]</c> is answered here from config.</item>
/// <item>Requests we do not govern pass unless <c>identity.authenticateUngoverned</c>.</item>
/// <item>A repeated credential header, two different credentials, or an underscore look-alike → 400 ambiguous_credentials.</item>
/// <item>Credentials in the query → 400; a non-Bearer Authorization → 401.</item>
/// <item>An mTLS peer with control characters or several identities, or none where mTLS is required → 401 invalid_client_identity.</item>
/// <item>The credential (API key or JWT) decides the tenant; without one, a mapped mTLS peer does, then the configured anonymous tenant; otherwise 401 missing_credentials.</item>
/// <item>A mapped peer naming another tenant than the credential → 400 ambiguous_credentials.</item>
/// </list>
/// Accepted: credential headers are removed before the upstream, <c>x-extproc-tenant</c> is set, and
/// tenant, key id and identity kind go into the decision record.
/// </summary>
internal sealed class AuthenticationStage : Stage
{
    public const string TenantHeader = InternalHeaderGuardStage.ReservedPrefix + "tenant";
    private const string RealmChallenge = "Bearer realm=\"extproc\"";
    private const string RealmInvalidTokenChallenge = "Bearer realm=\"extproc\", error=\"invalid_token\"";
    private const int StackPath = 512;

    private readonly TenancySnapshot _tenancy;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ExtProcMetrics _metrics;

    public AuthenticationStage(TenancySnapshot tenancy, TimeProvider time, ILogger logger, ExtProcMetrics metrics)
    {
        _tenancy = tenancy;
        _time = time;
        _logger = logger;
        _metrics = metrics;
    }

    public override string Name => "auth";

    public override ValueTask<StageResult> OnRequestHeadersAsync(ProcessingContext context)
    {
        if (context.IsUpstreamAttempt)
        {
            // The downstream filter authenticated this request and removed the client's credential; the
            // attempt learns the tenant from the routing decision (x-extproc-route).
            return StageResult.ContinueTask;
        }

        var headers = context.RequestHeaders;
        if (_tenancy.ProtectedResources.Length > 0 && TryAnswerMetadata(context, out var metadata))
        {
            return new(metadata);
        }

        if (!context.Governed && !_tenancy.AuthenticateUngoverned)
        {
            return StageResult.ContinueTask;
        }

        if (headers.TryGetSingle(":path", out var path) && CredentialReader.HasQueryCredential(path.Span))
        {
            return DenyAsync(context, GatewayError.CredentialsInQuery, "Credentials are not accepted in the query string; send them in a header.", "query credential");
        }

        var credential = CredentialReader.Read(headers);
        switch (credential.Kind)
        {
            case CredentialKind.Ambiguous:
                return DenyAsync(context, GatewayError.AmbiguousCredentials, "The request presents more than one credential; send exactly one.", credential.Reason!);
            case CredentialKind.Unsupported:
                return DenyAsync(context, GatewayError.UnsupportedAuthScheme, "Send the credential as 'Authorization: Bearer <key or token>' or in x-api-key.", credential.Reason!);
        }

        var peer = _tenancy.Peers.Resolve(context);
        if (peer.Status == PeerStatus.Invalid)
        {
            return DenyAsync(context, GatewayError.InvalidClientIdentity, "The client certificate identity is not acceptable.", "peer identity invalid");
        }

        if (peer.Status == PeerStatus.Absent && _tenancy.Peers.Required)
        {
            return DenyAsync(context, GatewayError.InvalidClientIdentity, "A client certificate is required.", "no peer certificate");
        }

        switch (credential.Kind)
        {
            case CredentialKind.ApiKey:
                return new(Accept(context, AuthenticateKey(context, credential.Value.Span), peer));
            case CredentialKind.Jwt:
                return AuthenticateJwtAsync(context, credential.Value, peer);
            default:
                if (peer.Status == PeerStatus.Mapped)
                {
                    var tenant = peer.Tenant!;
                    return new(Accept(context, new Outcome(new CallerIdentity(tenant, peer.Kind, tenant.Policy, subject: peer.Identity)), peer));
                }

                if (_tenancy.AnonymousTenant is { } anonymous)
                {
                    // Explicitly configured: no credential at all means this tenant (a wrong one never does).
                    return new(Accept(context, new Outcome(new CallerIdentity(anonymous, IdentityKind.Anonymous, anonymous.Policy)), peer));
                }

                return DenyAsync(context, GatewayError.MissingCredentials,
                    "No credentials were presented. Send an API key (Authorization: Bearer, x-api-key, api-key or x-goog-api-key) or a bearer token.", "no credential");
        }
    }

    private Outcome AuthenticateKey(ProcessingContext context, ReadOnlySpan<byte> key)
    {
        Span<char> id = stackalloc char[ApiKeyFormat.MaxIdLength];
        if (!ApiKeyFormat.TryReadId(key, id, out var idLength) || !_tenancy.TryGetKey(id[..idLength], out var entry))
        {
            return Outcome.Fail(GatewayError.InvalidApiKey, "unknown key");
        }

        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(key, hash);
        if (!CryptographicOperations.FixedTimeEquals(hash, entry.Hash))
        {
            return Outcome.Fail(GatewayError.InvalidApiKey, "hash mismatch", entry.Id);
        }

        if (entry.Revoked)
        {
            return Outcome.Fail(GatewayError.InvalidApiKey, "revoked", entry.Id);
        }

        if (entry.ExpiresAt is { } expires && _time.GetUtcNow() >= expires)
        {
            return Outcome.Fail(GatewayError.InvalidApiKey, "expired", entry.Id);
        }

        return new Outcome(new CallerIdentity(entry.Tenant, IdentityKind.ApiKey, entry.Policy, keyId: entry.Id));
    }

    private ValueTask<StageResult> AuthenticateJwtAsync(ProcessingContext context, ReadOnlyMemory<byte> token, PeerResult peer)
    {
        if (!_tenancy.Jwt.Enabled)
        {
            return new(Accept(context, Outcome.Fail(GatewayError.InvalidToken, "no JWT issuer configured"), peer));
        }

        var pending = _tenancy.Jwt.AuthenticateAsync(token, ResourceFor(context)?.Config.Resource);
        if (pending.IsCompletedSuccessfully)
        {
#pragma warning disable VSTHRD103 // completed synchronously: reading the result does not block
            return new(Accept(context, ToOutcome(pending.Result), peer));
#pragma warning restore VSTHRD103
        }

        return SlowAsync(this, context, pending, peer);

        static async ValueTask<StageResult> SlowAsync(AuthenticationStage stage, ProcessingContext context, ValueTask<JwtOutcome> pending, PeerResult peer) =>
            stage.Accept(context, ToOutcome(await pending.ConfigureAwait(false)), peer);
    }

    private static Outcome ToOutcome(JwtOutcome jwt) => jwt.Failure switch
    {
        JwtFailure.None => new Outcome(new CallerIdentity(jwt.Tenant!, IdentityKind.Jwt, jwt.Tenant!.Policy, subject: jwt.Subject)),
        JwtFailure.UnknownTenant => Outcome.Fail(GatewayError.UnknownTenant, "tenant claim names no configured tenant"),
        JwtFailure.InvalidTenantValue => Outcome.Fail(GatewayError.InvalidIdentityValue, "tenant claim has control characters"),
        JwtFailure.KeysUnavailable => Outcome.Fail(GatewayError.AuthUnavailable, "issuer keys unavailable"),
        _ => Outcome.Fail(GatewayError.InvalidToken, jwt.Failure.ToString()),
    };

    private StageResult Accept(ProcessingContext context, Outcome outcome, PeerResult peer)
    {
        if (outcome.Error is { } error)
        {
            return DenyResult(context, error, outcome.Reason!, outcome.KeyId);
        }

        var identity = outcome.Identity!;
        if (peer.Status == PeerStatus.Mapped && !ReferenceEquals(peer.Tenant, identity.Tenant))
        {
            return DenyResult(context, GatewayError.AmbiguousCredentials, "credential and client certificate name different tenants", identity.KeyId);
        }

        context.Identity = identity;
        var decision = context.Decision;
        decision.Tenant = identity.Tenant.Id;
        decision.KeyId = identity.KeyId;
        decision.Identity = identity.Kind.ToWireName();

        // The upstream never sees the client's credential (no token passthrough) and learns the
        // tenant only from us: the guard stage already removed any client-sent x-extproc-* header.
        var headers = context.RequestHeaders;
        foreach (var name in CredentialReader.CredentialHeaders)
        {
            if (headers.Contains(name))
            {
                context.RequestMutations.Remove(name);
            }
        }

        context.RequestMutations.Set(TenantHeader, identity.Tenant.HeaderValue);
        if (_logger.IsEnabled(LogLevel.Trace))
        {
            TenancyLog.AuthAccepted(_logger, context.RequestId, identity.Tenant.Id, identity.Kind.ToWireName(), identity.KeyId);
        }

        return StageResult.Continue;
    }

    private ValueTask<StageResult> DenyAsync(ProcessingContext context, GatewayError error, string message, string reason) =>
        new(DenyResult(context, error, reason, keyId: null, message));

    private StageResult DenyResult(ProcessingContext context, GatewayError error, string reason, string? keyId, string? message = null)
    {
        _metrics.AuthDenied(error.Code);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            TenancyLog.AuthDenied(_logger, context.RequestId, error.Code, reason, keyId);
        }

        message ??= MessageFor(error);
        if (error == GatewayError.AuthUnavailable)
        {
            return StageResult.Respond(ErrorResponses.RetryLater(context, error, message, TimeSpan.FromSeconds(5)));
        }

        if (error.Status != 401)
        {
            return StageResult.Respond(ErrorResponses.Create(context, error, message));
        }

        var resource = ResourceFor(context);
        var invalid = error != GatewayError.MissingCredentials && error != GatewayError.InvalidClientIdentity;
        var challenge = resource is null
            ? invalid ? RealmInvalidTokenChallenge : RealmChallenge
            : invalid ? resource.InvalidTokenChallenge : resource.Challenge;
        return StageResult.Respond(ErrorResponses.Unauthorized(context, error, message, challenge));
    }

    private static string MessageFor(GatewayError error) => error.Code switch
    {
        "invalid_api_key" => "The API key is not valid.",
        "invalid_token" => "The bearer token is not valid for this resource.",
        "unknown_tenant" => "The token names a tenant this gateway does not serve.",
        "invalid_identity_value" => "The identity presented contains characters that are not allowed.",
        "auth_unavailable" => "The gateway cannot verify credentials right now; retry shortly.",
        "ambiguous_credentials" => "The request presents conflicting credentials; send exactly one.",
        _ => "The request could not be authenticated.",
    };

    private ProtectedResource? ResourceFor(ProcessingContext context)
    {
        if (_tenancy.ProtectedResources.Length == 0 || !context.RequestHeaders.TryGetSingle(":path", out var path))
        {
            return null;
        }

        return WithNormalizedPath(path.Span, _tenancy, static (normalized, tenancy) => tenancy.ResourceForRoute(normalized));
    }

    private bool TryAnswerMetadata(ProcessingContext context, out StageResult result)
    {
        result = default;
        var headers = context.RequestHeaders;
        if (!headers.TryGetSingle(":path", out var path) || !headers.TryGetSingle(":method", out var method)
            || !(method.Span.SequenceEqual("GET"u8) || method.Span.SequenceEqual("HEAD"u8))
            || path.Span.IndexOf("well-known"u8) < 0 && path.Span.IndexOf("%"u8) < 0)
        {
            return false;
        }

        var resource = WithNormalizedPath(path.Span, _tenancy, static (normalized, tenancy) => tenancy.ResourceForMetadataPath(normalized));
        if (resource is null)
        {
            return false;
        }

        var response = new LocalResponse(200, resource.Document, "application/json", "extproc_protected_resource_metadata");
        response.Headers.Add(new("cache-control", "public, max-age=300"));
        result = StageResult.Respond(response);
        return true;
    }

    private static ProtectedResource? WithNormalizedPath(ReadOnlySpan<byte> path, TenancySnapshot tenancy,
        Func<ReadOnlySpan<byte>, TenancySnapshot, ProtectedResource?> find)
    {
        byte[]? rented = null;
        var buffer = path.Length + 1 <= StackPath ? stackalloc byte[StackPath] : (rented = ArrayPool<byte>.Shared.Rent(path.Length + 1));
        try
        {
            var length = ProtocolClassifier.NormalizePath(path, buffer);
            return find(buffer[..length], tenancy);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private readonly record struct Outcome(CallerIdentity? Identity, GatewayError? Error = null, string? Reason = null, string? KeyId = null)
    {
        public static Outcome Fail(GatewayError error, string reason, string? keyId = null) => new(null, error, reason, keyId);
    }
}
