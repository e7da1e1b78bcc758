using Microsoft.AspNetCore.Http.HttpResults;
using Peft.Core;
using Peft.Training.Serving;

namespace Peft.Web.Serving;

/// <summary>The generation outlived <see cref="ServingOptions.RequestTimeoutSeconds"/>.</summary>
public sealed class GenerationTimeoutException(int seconds) : Exception($"generation did not finish within the server's timeout of {seconds} s");

/// <summary>
/// Maps serving errors to problem details on every serving endpoint: user errors by kind (400/404/409/413/422),
/// a full queue to 429 with Retry-After, a timeout to 504. Anything else is a bug and stays a 500.
/// </summary>
public sealed class ServingErrorFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (Exception e) when (!context.HttpContext.Response.HasStarted && ToProblem(e, context.HttpContext) is { } problem)
        {
            return problem;
        }
    }

    public static ProblemHttpResult? ToProblem(Exception e, HttpContext http)
    {
        switch (e)
        {
            case PeftUserException u:
                return TypedResults.Problem(u.Message, statusCode: Infrastructure.PeftExceptionHandler.StatusOf(u.Kind));
            case ServerBusyException busy:
                http.Response.Headers.RetryAfter = ((int)Math.Ceiling(busy.RetryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                return TypedResults.Problem(busy.Message, statusCode: StatusCodes.Status429TooManyRequests);
            case GenerationTimeoutException t:
                return TypedResults.Problem(t.Message, statusCode: StatusCodes.Status504GatewayTimeout);
            default:
                return null;
        }
    }
}
