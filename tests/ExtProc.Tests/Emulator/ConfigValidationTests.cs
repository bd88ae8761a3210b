using Envoy.Extensions.Filters.Http.ExtProc.V3;
using ExtProc.EnvoyEmulator;
using static Envoy.Extensions.Filters.Http.ExtProc.V3.ProcessingMode.Types;

namespace ExtProc.Tests.Emulator;

/// <summary>§1.6: configs Envoy refuses at load time, with Envoy's messages.</summary>
public sealed class ConfigValidationTests
{
    private static ExtProcFilterConfig Valid()
    {
        var config = new ExtProcFilterConfig();
        config.GrpcService.Add(new Uri("http://127.0.0.1:1"));
        return config;
    }

    [Fact]
    public void Validate_DefaultConfigWithGrpcService_Passes()
    {
        Valid().Validate();
    }

    [Fact]
    public void Validate_NeitherOrBothServices_Refused()
    {
        var neither = new ExtProcFilterConfig();
        Assert.Equal("One and only one of grpc_service or http_service must be configured",
            Assert.Throws<FilterConfigException>(neither.Validate).Message);

        var both = Valid();
        both.HasHttpService = true;
        Assert.Throws<FilterConfigException>(both.Validate);
    }

    [Theory]
    [InlineData(BodySendMode.Buffered, BodySendMode.None, HeaderSendMode.Default)]
    [InlineData(BodySendMode.None, BodySendMode.Streamed, HeaderSendMode.Default)]
    [InlineData(BodySendMode.None, BodySendMode.None, HeaderSendMode.Send)]
    public void Validate_HttpServiceWithBodyOrTrailers_Refused(BodySendMode request, BodySendMode response, HeaderSendMode trailers)
    {
        var config = new ExtProcFilterConfig { HasHttpService = true };
        config.ProcessingMode = new ProcessingMode { RequestBodyMode = request, ResponseBodyMode = response, ResponseTrailerMode = trailers };
        Assert.Equal("If the ext_proc filter is configured with http_service instead of gRPC service, then the processing modes of this filter can not be configured to send body or trailer.",
            Assert.Throws<FilterConfigException>(config.Validate).Message);

        var headersOnly = new ExtProcFilterConfig { HasHttpService = true };
        headersOnly.Validate();
    }

    [Fact]
    public void Validate_FullDuplexWithoutTrailerSend_RefusedPerDirection()
    {
        var request = Valid();
        request.ProcessingMode = new ProcessingMode { RequestBodyMode = BodySendMode.FullDuplexStreamed };
        Assert.Equal("If the ext_proc filter has the request_body_mode set to FULL_DUPLEX_STREAMED, then the request_trailer_mode has to be set to SEND",
            Assert.Throws<FilterConfigException>(request.Validate).Message);

        var response = Valid();
        response.ProcessingMode = new ProcessingMode { ResponseBodyMode = BodySendMode.FullDuplexStreamed };
        Assert.Equal("If the ext_proc filter has the response_body_mode set to FULL_DUPLEX_STREAMED, then the response_trailer_mode has to be set to SEND",
            Assert.Throws<FilterConfigException>(response.Validate).Message);

        var ok = Valid();
        ok.ProcessingMode = new ProcessingMode { RequestBodyMode = BodySendMode.FullDuplexStreamed, RequestTrailerMode = HeaderSendMode.Send };
        ok.FailureModeAllow = true; // the Jul-2025 rule against this was reverted
        ok.Validate();
    }

    [Fact]
    public void Validate_DisableClearRouteCacheWithNonDefaultAction_Refused()
    {
        var config = Valid();
        config.DisableClearRouteCache = true;
        config.RouteCacheAction = RouteCacheAction.Clear;
        Assert.Equal("disable_clear_route_cache and route_cache_action can not be set to none-default at the same time.",
            Assert.Throws<FilterConfigException>(config.Validate).Message);
    }

    [Fact]
    public void Validate_UndefinedEnumAndOutOfRangeTimeouts_Refused()
    {
        var badEnum = Valid();
        badEnum.ProcessingMode = new ProcessingMode { RequestBodyMode = (BodySendMode)42 };
        Assert.Throws<FilterConfigException>(badEnum.Validate);

        var badTimeout = Valid();
        badTimeout.MessageTimeout = TimeSpan.FromSeconds(3601);
        Assert.Throws<FilterConfigException>(badTimeout.Validate);

        var badMax = Valid();
        badMax.MaxMessageTimeout = TimeSpan.FromSeconds(-1);
        Assert.Throws<FilterConfigException>(badMax.Validate);
    }

    [Fact]
    public void EnvoyEmulator_InvalidConfig_RefusedAtConstruction()
    {
        Assert.Throws<FilterConfigException>(() => new EnvoyEmulator.EnvoyEmulator(new ExtProcFilterConfig(), new CannedUpstream()));
    }
}
