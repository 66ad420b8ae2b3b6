"""rclpy.node (stand-in): Node with parameters, publishers, subscriptions, services, clients and timers.

Signatures follow rclpy (Humble/Jazzy). Topics are an in-process bus: publish() queues a copy for every matching
subscription (KEEP_LAST depth, QoS compatibility as DDS decides), and an executor's spin_once() runs one ready
callback: a due timer first, then the oldest message or service request.
"""
from __future__ import annotations

from collections import deque

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy import _standin
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              NotInitializedException, ParameterAlreadyDeclaredException,
                              ParameterNotDeclaredException)
from rclpy.logging import get_logger
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, as_profile, qos_profile_services_default
from rclpy.task import Future
from rclpy.timer import Timer


class Publisher:
    def __init__(self, node, msg_type, topic, qos_profile):
        self.node = node
        self.msg_type = msg_type
        self.topic = topic
        self.qos_profile = qos_profile
        self._destroyed = False

    @property
    def topic_name(self) -> str:
        return self.topic

    def publish(self, msg) -> None:
        if self._destroyed:
            raise RuntimeError(f"publisher on {self.topic} was destroyed")
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"Expected {self.msg_type.__name__}, got {type(msg).__name__}")
        _standin.deliver(self.topic, msg, self.qos_profile)

    def get_subscription_count(self) -> int:
        return len(_standin.WORLD.subscriptions.get(self.topic, []))

    def destroy(self) -> None:
        self._destroyed = True
        with _standin.WORLD.lock:
            lst = _standin.WORLD.publishers.get(self.topic, [])
            if self in lst:
                lst.remove(self)


class Subscription:
    def __init__(self, node, msg_type, topic, callback, qos_profile):
        self.node = node
        self.msg_type = msg_type
        self.topic = topic
        self.callback = callback
        self.qos_profile = qos_profile
        depth = qos_profile.depth if qos_profile.history == HistoryPolicy.KEEP_LAST else None
        self._queue: deque = deque(maxlen=depth or None)

    @property
    def topic_name(self) -> str:
        return self.topic

    def _enqueue(self, seq, msg) -> None:
        self._queue.append((seq, msg))

    def destroy(self) -> None:
        with _standin.WORLD.lock:
            lst = _standin.WORLD.subscriptions.get(self.topic, [])
            if self in lst:
                lst.remove(self)
            self._queue.clear()


class Service:
    def __init__(self, node, srv_type, srv_name, callback):
        self.node = node
        self.srv_type = srv_type
        self.srv_name = srv_name
        self.callback = callback
        self._queue: deque = deque()

    def destroy(self) -> None:
        with _standin.WORLD.lock:
            if _standin.WORLD.services.get(self.srv_name) is self:
                del _standin.WORLD.services[self.srv_name]


class Client:
    def __init__(self, node, srv_type, srv_name):
        self.node = node
        self.srv_type = srv_type
        self.srv_name = srv_name

    def service_is_ready(self) -> bool:
        return self.srv_name in _standin.WORLD.services

    def wait_for_service(self, timeout_sec=None) -> bool:
        return self.service_is_ready()

    def call_async(self, request) -> Future:
        if not isinstance(request, self.srv_type.Request):
            raise TypeError(f"Expected {self.srv_type.Request.__name__}, got {type(request).__name__}")
        future = Future()
        with _standin.WORLD.lock:
            service = _standin.WORLD.services.get(self.srv_name)
            if service is not None:
                service._queue.append((next(_standin.WORLD.seq), request, future))
        return future

    def destroy(self) -> None:
        pass


class Node:
    PARAM_REL_TOL = 1e-6

    def __init__(self, node_name, *, context=None, cli_args=None, namespace=None, use_global_arguments=True,
                 enable_rosout=True, start_parameter_services=True, parameter_overrides=None,
                 allow_undeclared_parameters=False, automatically_declare_parameters_from_overrides=False,
                 enable_logger_service=False):
        if not _standin.WORLD.initialized:
            raise NotInitializedException()
        if not node_name or not node_name.replace("_", "a").isalnum():
            raise ValueError(f"Invalid node name: {node_name!r}")
        self._name = node_name
        self._namespace = namespace or "/"
        if not self._namespace.startswith("/"):
            self._namespace = "/" + self._namespace
        self._logger = get_logger(node_name)
        self._clock = Clock(clock_type=ClockType.ROS_TIME)
        self._parameters: dict[str, Parameter] = {}
        self._descriptors: dict[str, ParameterDescriptor] = {}
        self._parameter_overrides = {p.name: p for p in (parameter_overrides or [])}
        self._allow_undeclared_parameters = allow_undeclared_parameters
        self._set_parameters_callbacks = []
        self._publishers: list[Publisher] = []
        self._subscriptions: list[Subscription] = []
        self._services: list[Service] = []
        self._clients: list[Client] = []
        self._timers: list[Timer] = []
        self._executor = None
        self._destroyed = False
        self.default_callback_group = MutuallyExclusiveCallbackGroup()
        self.declare_parameter("use_sim_time", False)
        if automatically_declare_parameters_from_overrides:
            for name, p in self._parameter_overrides.items():
                if name not in self._parameters:
                    self.declare_parameter(name, p.value)

    # --- names -----------------------------------------------------------------------------------------------
    def get_name(self) -> str:
        return self._name

    def get_namespace(self) -> str:
        return self._namespace

    def get_fully_qualified_name(self) -> str:
        return _standin.resolve_name("~", self._name, self._namespace)

    def resolve_topic_name(self, topic: str, *, only_expand=False) -> str:
        return _standin.resolve_name(topic, self._name, self._namespace)

    def get_logger(self):
        return self._logger

    def get_clock(self):
        return self._clock

    @property
    def executor(self):
        return self._executor

    @executor.setter
    def executor(self, new_executor):
        """As rclpy: setting it moves the node to that executor (so a subclass must not reuse the name)."""
        current = self._executor
        if current is new_executor:
            return
        if current is not None:
            current.remove_node(self)
        self._executor = new_executor
        if new_executor is not None:
            new_executor.add_node(self)

    # --- parameters --------------------------------------------------------------------------------------------
    def declare_parameter(self, name, value=None, descriptor=None, ignore_override=False):
        return self.declare_parameters("", [(name, value, descriptor or ParameterDescriptor())], ignore_override)[0]

    def declare_parameters(self, namespace, parameters, ignore_override=False):
        plist, descriptors = [], {}
        for item in parameters:
            name = item[0]
            value = item[1] if len(item) > 1 else None
            descriptor = item[2] if len(item) > 2 else ParameterDescriptor()
            full = f"{namespace}.{name}" if namespace else name
            if full in self._parameters:
                raise ParameterAlreadyDeclaredException([full])
            descriptor.name = full
            declared_type = None
            if isinstance(value, Parameter.Type):
                declared_type, value = value, None
            elif value is not None:
                declared_type = Parameter.Type.from_parameter_value(value)
            if not ignore_override and full in self._parameter_overrides:
                override = self._parameter_overrides[full]
                if (not descriptor.dynamic_typing and declared_type is not None
                        and override.type_ != declared_type):
                    raise InvalidParameterTypeException(override, declared_type.name)
                value = override.value
            if not descriptor.dynamic_typing and declared_type is not None:
                descriptor.type = declared_type.value
            plist.append(Parameter(full, value=value))
            descriptors[full] = descriptor
        for p in plist:
            result = self._call_callbacks([p])
            if not result.successful:
                raise InvalidParameterValueException(p.name, p.value, result.reason)
        for p in plist:
            self._parameters[p.name] = p
            self._descriptors[p.name] = descriptors[p.name]
        return plist

    def undeclare_parameter(self, name):
        if name not in self._parameters:
            raise ParameterNotDeclaredException(name)
        del self._parameters[name]
        del self._descriptors[name]

    def has_parameter(self, name) -> bool:
        return name in self._parameters

    def get_parameter(self, name) -> Parameter:
        if name in self._parameters:
            return self._parameters[name]
        if self._allow_undeclared_parameters:
            return Parameter(name, Parameter.Type.NOT_SET, None)
        raise ParameterNotDeclaredException(name)

    def get_parameters(self, names):
        return [self.get_parameter(n) for n in names]

    def get_parameter_or(self, name, alternative_value=None):
        return self._parameters.get(name, alternative_value)

    def describe_parameter(self, name) -> ParameterDescriptor:
        if name not in self._descriptors:
            raise ParameterNotDeclaredException(name)
        return self._descriptors[name]

    def add_on_set_parameters_callback(self, callback) -> None:
        self._set_parameters_callbacks.insert(0, callback)

    def remove_on_set_parameters_callback(self, callback) -> None:
        self._set_parameters_callbacks.remove(callback)

    def _call_callbacks(self, plist) -> SetParametersResult:
        result = SetParametersResult(successful=True)
        for cb in self._set_parameters_callbacks:
            result = cb(plist)
            if not isinstance(result, SetParametersResult):
                raise TypeError("set parameters callback must return a SetParametersResult")
            if not result.successful:
                return result
        return result

    def set_parameters(self, parameter_list):
        for p in parameter_list:
            if p.name not in self._parameters and not self._allow_undeclared_parameters:
                raise ParameterNotDeclaredException(p.name)
        return [self.set_parameters_atomically([p]) for p in parameter_list]

    def set_parameters_atomically(self, parameter_list) -> SetParametersResult:
        for p in parameter_list:
            d = self._descriptors.get(p.name)
            if d is None:
                continue
            if d.read_only:
                return SetParametersResult(successful=False, reason=f"Trying to set a read-only parameter: {p.name}.")
            if not d.dynamic_typing and d.type != 0 and p.type_.value != d.type:
                expected = Parameter.Type(d.type)
                return SetParametersResult(successful=False,
                                           reason=f"Wrong parameter type, expected '{expected}' got '{p.type_}'")
        result = self._call_callbacks(parameter_list)
        if result.successful:
            for p in parameter_list:
                self._parameters[p.name] = p
                if p.name not in self._descriptors:
                    self._descriptors[p.name] = ParameterDescriptor(name=p.name)
        return result

    # --- entities ----------------------------------------------------------------------------------------------
    def create_publisher(self, msg_type, topic, qos_profile, *, callback_group=None, event_callbacks=None,
                         qos_overriding_options=None, publisher_class=None):
        qos = as_profile(qos_profile)
        name = self.resolve_topic_name(topic)
        _standin.check_type(name, msg_type)
        pub = (publisher_class or Publisher)(self, msg_type, name, qos)
        with _standin.WORLD.lock:
            _standin.WORLD.publishers.setdefault(name, []).append(pub)
        self._publishers.append(pub)
        return pub

    def create_subscription(self, msg_type, topic, callback, qos_profile, *, callback_group=None,
                            event_callbacks=None, qos_overriding_options=None, raw=False):
        qos = as_profile(qos_profile)
        name = self.resolve_topic_name(topic)
        _standin.check_type(name, msg_type)
        sub = Subscription(self, msg_type, name, callback, qos)
        with _standin.WORLD.lock:
            _standin.WORLD.subscriptions.setdefault(name, []).append(sub)
        self._subscriptions.append(sub)
        return sub

    def create_service(self, srv_type, srv_name, callback, *, qos_profile=qos_profile_services_default,
                       callback_group=None):
        name = self.resolve_topic_name(srv_name)
        with _standin.WORLD.lock:
            if name in _standin.WORLD.services:
                _standin.record("WARN", self._name, f"a second server for service {name}")
            srv = Service(self, srv_type, name, callback)
            _standin.WORLD.services[name] = srv
        self._services.append(srv)
        return srv

    def create_client(self, srv_type, srv_name, *, qos_profile=qos_profile_services_default, callback_group=None):
        client = Client(self, srv_type, self.resolve_topic_name(srv_name))
        self._clients.append(client)
        return client

    def create_timer(self, timer_period_sec, callback, callback_group=None, clock=None, autostart=True):
        timer = Timer(callback, callback_group, int(timer_period_sec * 1e9), clock or self._clock)
        if not autostart:
            timer.cancel()
        self._timers.append(timer)
        return timer

    def create_rate(self, frequency, clock=None):
        raise NotImplementedError("the stand-in has no Rate (it would block the single executor thread)")

    @property
    def publishers(self):
        return iter(self._publishers)

    @property
    def subscriptions(self):
        return iter(self._subscriptions)

    @property
    def services(self):
        return iter(self._services)

    @property
    def clients(self):
        return iter(self._clients)

    @property
    def timers(self):
        return iter(self._timers)

    def destroy_publisher(self, publisher) -> bool:
        if publisher in self._publishers:
            self._publishers.remove(publisher)
            publisher.destroy()
            return True
        return False

    def destroy_subscription(self, subscription) -> bool:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            subscription.destroy()
            return True
        return False

    def destroy_service(self, service) -> bool:
        if service in self._services:
            self._services.remove(service)
            service.destroy()
            return True
        return False

    def destroy_client(self, client) -> bool:
        if client in self._clients:
            self._clients.remove(client)
            return True
        return False

    def destroy_timer(self, timer) -> bool:
        if timer in self._timers:
            self._timers.remove(timer)
            timer.destroy()
            return True
        return False

    def count_publishers(self, topic_name) -> int:
        return len(_standin.WORLD.publishers.get(self.resolve_topic_name(topic_name), []))

    def count_subscribers(self, topic_name) -> int:
        return len(_standin.WORLD.subscriptions.get(self.resolve_topic_name(topic_name), []))

    def destroy_node(self) -> None:
        for p in list(self._publishers):
            self.destroy_publisher(p)
        for s in list(self._subscriptions):
            self.destroy_subscription(s)
        for s in list(self._services):
            self.destroy_service(s)
        for t in list(self._timers):
            self.destroy_timer(t)
        self._clients.clear()
        if self._executor is not None:
            self._executor.remove_node(self)
        self._destroyed = True

    # --- stand-in executor hook --------------------------------------------------------------------------------
    def _ready(self):
        """(priority, sequence, run) for every callback ready now."""
        out = []
        for i, t in enumerate(self._timers):
            if t.is_ready():
                out.append((0, i, t._call))
        for s in self._subscriptions:
            if s._queue:
                seq, _ = s._queue[0]

                def run(s=s):
                    with _standin.WORLD.lock:
                        if not s._queue:
                            return
                        _, msg = s._queue.popleft()
                    s.callback(msg)
                out.append((1, seq, run))
        for srv in self._services:
            if srv._queue:
                seq = srv._queue[0][0]

                def run_srv(srv=srv):
                    with _standin.WORLD.lock:
                        _, request, future = srv._queue.popleft()
                    response = srv.callback(request, srv.srv_type.Response())
                    future.set_result(response)
                out.append((1, seq, run_srv))
        return out
